"""``leadflow rules …``: the ruleset workflow from the server's shell, straight on the database.

The same service functions as the API. ``--as NAME`` names the person acting; approving needs a
principal of that name in ``auth.principals`` holding the approver role of the side.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import backtest, store, versions
from services.scoring.ruleset import RulesetInvalid, compile_ruleset
from shared.cli import on_db, principal, show, show_diff, signed_and_activated
from shared.config import Settings

rules_app = typer.Typer(help="Qualification rulesets: validate, propose, approve, activate.")
console = Console()
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


@rules_app.command()
def propose(
    path: Path,
    by: AsOption,
    note: Annotated[str, typer.Option(help="What changes and why")] = "",
    as_json: JsonOption = False,
) -> None:
    """Store a ruleset file as a new proposed version (its content never changes after)."""
    text = path.read_text()

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        row = await versions.propose(session, text, by=by, note=note, now=datetime.now(UTC))
        return versions.view(row, [])

    show(on_db(work, write=True), as_json)


@rules_app.command()
def approve(
    version: int,
    by: AsOption,
    side: Annotated[str, typer.Option(help="marketing or sales")],
    content_hash: Annotated[str, typer.Option("--hash", help="SHA-256 of the content reviewed")],
) -> None:
    """Sign a version for your side; the hash must be the content you reviewed."""

    async def work(session: AsyncSession, settings: Settings) -> str:
        caller = principal(settings, by)
        await versions.approve(
            session,
            version,
            caller=caller,
            side=side,
            signed_hash=content_hash,
            now=datetime.now(UTC),
        )
        return f"version {version} approved for {side} by {by}"

    typer.echo(on_db(work, write=True))


@rules_app.command()
def activate(version: int, by: AsOption, as_json: JsonOption = False) -> None:
    """Make a version co-signed by marketing and sales the live one (emits ruleset.activated)."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        row = await versions.activate(session, settings, version, by=by, now=datetime.now(UTC))
        return versions.view(row, await versions.approvals_of(session, row))

    show(on_db(work, write=True), as_json)


@rules_app.command()
def diff(
    version: int,
    against: Annotated[int, typer.Option(help="The version to compare with")],
    as_json: JsonOption = False,
) -> None:
    """Rules added, removed and changed, and the unified diff of the files."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        return await versions.diff(session, against, version)

    show_diff(on_db(work, write=False), as_json)


@rules_app.command()
def history(as_json: JsonOption = False) -> None:
    """Every version, newest first: status, signatures, activation."""

    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        return await versions.history(session)

    rows = on_db(work, write=False)
    if as_json:
        show(rows, True)
        return
    table = Table("version", "label", "status", "proposed by", "approvals", "activated")
    for row in rows:
        signed, activated = signed_and_activated(row)
        table.add_row(
            str(row["version"]), row["label"], row["status"], row["proposed_by"], signed, activated
        )
    console.print(table)


@rules_app.command("backtest")
def run_backtest(
    version: int,
    days: Annotated[int, typer.Option(help="The window of past leads, in days")] = 90,
    as_json: JsonOption = False,
) -> None:
    """Run a version over the leads of the past window, next to the active version."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        cache = store.RulesetCache()
        row = await versions.find(session, version)
        proposed = (row.label, await cache.by_label(session, row.label))
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
