"""The installed package carries every file the services read at run time.

The container image installs Leadflow with `pip install .` (not editable), so a template or a
stylesheet that pyproject.toml's package data leaves out is missing only in production.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_wheel_holds_every_data_file_of_services_and_shared(tmp_path: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "services", "shared"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data = {name for name in tracked if not name.endswith(".py")}
    assert data, "no data files found: is this a git checkout?"

    source = tmp_path / "source"  # a clean copy: setuptools would reuse a stale build/ here
    for name in [*tracked, "pyproject.toml", "README.md"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("leadflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())

    assert data - packaged == set()
