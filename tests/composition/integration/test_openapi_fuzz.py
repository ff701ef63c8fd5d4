"""An off-the-shelf fuzzer, as a new user would run it: schemathesis with every phase against the
whole OpenAPI document of a running `leadflow dev` (embedded broker, SQLite), with its secret key.
Bounded and seeded here; `make fuzz` runs it longer with a new seed. schemathesis.toml says which
checks run: every one but two, each left out for a reason written there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fuzz import fuzz, mismatched, running_dev

pytestmark = pytest.mark.timeout(600)


def test_no_check_fails_on_any_operation_of_the_api(tmp_path: Path) -> None:
    with running_dev(tmp_path / "data") as (base, key):
        run = fuzz(base, key, examples=5, seed=20261207)
    summary = run.stdout[run.stdout.find("SUMMARY") :] or run.stdout[-3000:]
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert "Server error" not in run.stdout, summary
    assert "Tested: " in run.stdout, summary
    # An operation whose generated valid data is all refused: its schema says less than its
    # validation checks (schemathesis.toml says how the ones no schema can describe are run).
    assert mismatched(run.stdout) == set(), summary
