"""``leadflow rules …`` against a real database (LEADFLOW_DB__URL), through typer's CliRunner.

The tests are synchronous: each command runs its own event loop, as it does from a shell.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.support.common import Database

DEFAULT = Path(__file__).parents[3] / "rules" / "default.yaml"
PEOPLE = [
    {"name": "maria", "key": "k_maria", "roles": ["approver:marketing"]},
    {"name": "sam", "key": "k_sam", "roles": ["approver:sales"]},
    {"name": "pat", "key": "k_pat", "roles": []},
]
BAD = """name: bad
fit:
  grades: {A: 10, D: 0}
  rules:
    - id: fine
      when: "lead.employees > 10"
      points: 5
    - id: broken
      when: "lead.employees >"
      points: 5
stages:
  mql: {min_grade: Z}
"""


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    monkeypatch.setenv("LEADFLOW_AUTH__PRINCIPALS", json.dumps(PEOPLE))
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, ["rules", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout


def test_validate_a_good_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rules", "validate", str(DEFAULT), "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert len(report["content_hash"]) == 64
    assert report["conditions"] > 10


def test_validate_a_bad_file_names_each_rule_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = CliRunner().invoke(app, ["rules", "validate", str(bad), "--json"])
    assert result.exit_code == 1
    problems = {p["rule"]: p for p in json.loads(result.stdout)["problems"]}
    assert problems["stages.mql"]["line"] == 12
    assert "min_grade 'Z'" in problems["stages.mql"]["reason"]
    human = CliRunner().invoke(app, ["rules", "validate", str(bad)])
    assert human.exit_code == 1
    assert f"{bad}:12: stages.mql:" in human.stderr


def test_propose_approve_activate_diff_history(cli: CliRunner, tmp_path: Path) -> None:
    first = json.loads(run(cli, "propose", str(DEFAULT), "--as", "pat", "--json"))
    changed = tmp_path / "v2.yaml"
    changed.write_text(DEFAULT.read_text().replace("points: 20\n", "points: 25\n", 1))
    second = json.loads(
        run(cli, "propose", str(changed), "--as", "pat", "--note", "more", "--json")
    )
    assert second["version"] == first["version"] + 1 and second["status"] == "proposed"

    version, digest = str(second["version"]), second["content_hash"]
    run(cli, "approve", version, "--as", "maria", "--side", "marketing", "--hash", digest)
    out = run(cli, "approve", version, "--as", "sam", "--side", "sales", "--hash", digest)
    assert f"version {version} approved for sales by sam" in out
    activated = json.loads(run(cli, "activate", version, "--as", "sam", "--json"))
    assert activated["status"] == "active"

    history = {v["version"]: v for v in json.loads(run(cli, "history", "--json"))}
    assert history[second["version"]]["status"] == "active"
    assert {a["side"] for a in history[second["version"]]["approvals"]} == {"marketing", "sales"}
    assert history[first["version"]]["status"] == "proposed"

    diff = run(cli, "diff", version, "--against", str(first["version"]), "--json")
    assert "+      points: 25" in json.loads(diff)["diff"]
    shown = run(cli, "diff", version, "--against", str(first["version"]))
    assert "added: -" in shown and "+      points: 25" in shown
    table = run(cli, "history")
    assert "maria" in table and "active" in table  # the approvals and status columns


def test_approve_is_refused_without_the_sides_role(cli: CliRunner) -> None:
    proposed = json.loads(run(cli, "propose", str(DEFAULT), "--as", "pat", "--json"))
    version, digest = str(proposed["version"]), proposed["content_hash"]
    result = cli.invoke(
        app, ["rules", "approve", version, "--as", "maria", "--side", "sales", "--hash", digest]
    )
    assert result.exit_code == 1
    assert "leadflow:" in result.stderr
    unknown = cli.invoke(
        app, ["rules", "approve", version, "--as", "nobody", "--side", "sales", "--hash", digest]
    )
    assert unknown.exit_code == 1
    assert "no principal named 'nobody'" in unknown.stderr
    history = json.loads(run(cli, "history", "--json"))
    assert [v["approvals"] for v in history if v["version"] == proposed["version"]] == [[]]


def test_backtest_reports_with_a_progress_bar(cli: CliRunner) -> None:
    proposed = json.loads(run(cli, "propose", str(DEFAULT), "--as", "pat", "--json"))
    result = cli.invoke(app, ["rules", "backtest", str(proposed["version"]), "--days", "30"])
    assert result.exit_code == 0, result.stderr
    assert "backtest" in result.stderr  # the progress bar's label, on stderr
    report = json.loads(run(cli, "backtest", str(proposed["version"]), "--json"))
    assert report["proposed"] == proposed["label"]
    assert report["leads"] == 0 and report["changed"] == 0
