"""What the services' logging writes when something fails."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator

import pytest

from shared.logs import QUIET_LIBRARIES, configure_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in libraries.items():
        logging.getLogger(name).setLevel(was)


def _fail_holding(secret: str) -> None:
    raise ValueError("the work failed")


@pytest.mark.parametrize("json", [False, True])
def test_a_traceback_shows_no_local_variables(
    json: bool, restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A frame's locals hold passwords, signing secrets and keys: a traceback names the frames
    and the error, not their values."""
    configure_logging("INFO", json=json)
    secret = secrets.token_urlsafe(24)  # not in this file's text, which a traceback quotes
    try:
        _fail_holding(f"whsec_{secret}")
    except ValueError:
        logging.getLogger("leadflow.test").exception("delivery failed")
    written = capsys.readouterr().err
    assert "delivery failed" in written
    assert "_fail_holding" in written and "the work failed" in written  # the traceback is there
    assert secret not in written
