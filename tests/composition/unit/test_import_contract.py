"""The import contract (pyproject.toml, ``[tool.importlinter]``): services are independent of each
other, shared imports no service, and only the composition root (``services/*.py``) imports
more than one service. ``make lint`` runs it too; here it fails the suite, and so CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_the_import_contract_holds() -> None:
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_shared_names_no_service_to_import_by_name() -> None:
    """What the linter cannot see: a module imported by its name (``shared.models`` once loaded
    every service's tables this way)."""
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "shared").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "import_module" in line or "__import__" in line or '"services.' in line
    ]
    assert found == []
