"""``leadflow routing-rules …``: routing rules versions from the server's shell, straight on the
database, with the same service functions as the API (services/routing/versions.py).

``--as NAME`` names the person acting; approving needs a principal of that name in
``auth.principals`` holding the approver role of the side, as ``leadflow rules approve`` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import versions
from shared.cli import console, on_db, principal, show, show_diff, signed_and_activated
from shared.config import Settings

routing_rules_app = typer.Typer(
    help="Routing rules versions: validate, propose, approve (both sides), activate.",
    no_args_is_help=True,
)
AsOption = Annotated[str, typer.Option("--as", help="Who is acting (a principal's name)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
FileArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="Routing rules YAML")
]


@routing_rules_app.command()
def validate(path: FileArgument, as_json: JsonOption = False) -> None:
    """Check a rules file: YAML, CEL conditions, and teams that exist."""
    text = path.read_text(encoding="utf-8")

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        return {"valid": True, "content_hash": await versions.validate(session, text)}

    show(on_db(work, write=False), as_json)


@routing_rules_app.command()
def propose(
    path: FileArgument,
    by: AsOption,
    note: Annotated[str, typer.Option(help="What changes and why")] = "",
    as_json: JsonOption = False,
) -> None:
    """Store a rules file as a new proposed version (its content never changes after)."""
    text = path.read_text(encoding="utf-8")

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        row = await versions.propose(session, text, by=by, note=note, now=datetime.now(UTC))
        return versions.view(row, [])

    show(on_db(work, write=True), as_json)


@routing_rules_app.command()
def approve(
    version: int,
    by: AsOption,
    side: Annotated[str, typer.Option(help="marketing or sales")],
    content_hash: Annotated[str, typer.Option("--hash", help="SHA-256 of the content reviewed")],
) -> None:
    """Sign a version for your side; the hash must be the content you reviewed."""

    async def work(session: AsyncSession, settings: Settings) -> str:
        await versions.approve(
            session,
            version,
            caller=principal(settings, by),
            side=side,
            signed_hash=content_hash,
            now=datetime.now(UTC),
        )
        return f"routing rules version {version} approved for {side} by {by}"

    typer.echo(on_db(work, write=True))


@routing_rules_app.command()
def activate(version: int, by: AsOption, as_json: JsonOption = False) -> None:
    """Make a version co-signed by marketing and sales the live one (emits an event)."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        row = await versions.activate(session, settings, version, by=by, now=datetime.now(UTC))
        return versions.view(row, await versions.approvals_of(session, version))

    show(on_db(work, write=True), as_json)


@routing_rules_app.command()
def diff(
    version: int,
    against: Annotated[int | None, typer.Option(help="Default: the active version")] = None,
    as_json: JsonOption = False,
) -> None:
    """Rules added, removed and changed, and the unified diff of the files."""

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        old = against if against is not None else await versions.active_version(session)
        return await versions.diff(session, old, version)

    show_diff(on_db(work, write=False), as_json)


@routing_rules_app.command()
def history(as_json: JsonOption = False) -> None:
    """Every version, newest first: status, signatures, activation."""

    async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
        return await versions.history(session)

    rows = on_db(work, write=False)
    if as_json:
        show(rows, True)
        return
    table = Table("version", "status", "proposed by", "approvals", "activated")
    for row in rows:
        signed, activated = signed_and_activated(row)
        table.add_row(str(row["version"]), row["status"], row["proposed_by"], signed, activated)
    console.print(table)
