"""``leadflow rules …``: the ruleset workflow from the server's shell, straight on the database:
``validate`` (offline) and ``backtest`` here, the co-signing commands from shared/cosign.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import backtest, store, versions
from services.scoring.ruleset import RulesetInvalid, compile_ruleset
from shared.cli import on_db, show
from shared.config import Settings
from shared.cosign import store as cosigned
from shared.cosign.cli import add_commands

rules_app = typer.Typer(help="Qualification rulesets: validate, propose, approve, activate.")
AsOption = Annotated[str, typer.Option("--as", help="Who is acting (a principal's name)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


@rules_app.command()
def validate(path: Path, as_json: JsonOption = False) -> None:
    """Parse and type-check a ruleset file; name every bad rule with its line."""
    try:
        compiled = compile_ruleset(path.read_text())
    except RulesetInvalid as error:
        if as_json:
            problems = [
                {"rule": p.rule, "line": p.line, "reason": p.reason} for p in error.problems
            ]
            typer.echo(json.dumps({"valid": False, "problems": problems}, indent=2))
        for problem in error.problems:
            typer.echo(f"{path}:{problem.line or '?'}: {problem.rule}: {problem.reason}", err=True)
        raise typer.Exit(1) from None
    result = {
        "valid": True,
        "content_hash": compiled.content_hash,
        "conditions": len(compiled.slots),
    }
    show(result, as_json)


add_commands(rules_app, versions.QUALIFICATION, file_help="Ruleset YAML")


@rules_app.command("backtest")
def run_backtest(
    version: int,
    days: Annotated[int, typer.Option(help="The window of past leads, in days")] = 90,
    as_json: JsonOption = False,
) -> None:
    """Run a version over the leads of the past window, next to the active version."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        cache = store.RulesetCache()
        row = await cosigned.find(session, versions.QUALIFICATION, version)
        label = str(row.label)
        proposed = (label, await cache.by_label(session, label))
        active = await cache.active_or_sample(session)
        columns = (TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(stderr=True), transient=as_json) as bar:
            task = bar.add_task("leads", total=None)
            report = await backtest.run(
                session,
                active,
                proposed,
                now=datetime.now(UTC),
                days=days,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        return report.as_dict()

    show(on_db(work, write=False), as_json)
