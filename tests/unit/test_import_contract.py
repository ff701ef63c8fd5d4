"""The import contract (pyproject.toml, ``[tool.importlinter]``): services are independent of each
other, shared imports no service, and only the composition root (``services/*.py``) imports
more than one service. ``make lint`` runs it too; here it fails the suite, and so CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_import_contract_holds() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
