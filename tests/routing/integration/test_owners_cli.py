"""``leadflow owners …`` against a real SQLite file: import (all or nothing), list, availability."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app

GOOD = """email,name,teams,weight,languages,manager_email,working_hours,time_zone
lead@co.com,Lea,emea,1,de;en,,,UTC
ann@co.com,Ann,emea|inside,2,en,lead@co.com,mon-fri 09:00-17:00,Europe/Berlin
"""
BAD = """email,name,teams,weight,time_zone
zed@co.com,Zed,emea,1,UTC
bad,Bad,emea,0,Mars/Olympus
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("LEADFLOW_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    assert invoke("db", "upgrade")[0] == 0
    return invoke


def test_import_lists_and_changes_availability(run, tmp_path: Path) -> None:  # noqa: ANN001
    good = tmp_path / "reps.csv"
    good.write_text(GOOD)
    code, out = run("owners", "import", str(good), "--json")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {
        "imported": 2,
        "created_teams": ["emea", "inside"],
    }
    code, out = run("owners", "away", "ann@co.com", "--until", "2030-01-01T00:00:00+00:00")
    assert code == 0, out
    code, out = run("owners", "list", "--json")
    reps = {r["email"]: r for r in json.loads(out)}
    assert reps["ann@co.com"]["teams"] == ["emea", "inside"] and reps["ann@co.com"]["weight"] == 2
    assert reps["ann@co.com"]["away_until"].startswith("2030-01-01")


def test_a_csv_with_a_bad_row_imports_nothing_and_names_the_rows(run, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.csv"
    bad.write_text(BAD)
    code, out = run("owners", "import", str(bad))
    assert code == 1
    assert "row 3, email" in out and "row 3, weight" in out and "row 3, time_zone" in out
    code, out = run("owners", "list", "--json")
    assert json.loads(out) == []
