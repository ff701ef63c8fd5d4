"""A kind's commands: propose, approve, activate, diff, history (``leadflow rules …``,
``leadflow routing-rules …``), straight on the database with the same functions as the API.

``--as NAME`` names the person acting; approving needs a principal of that name in
``auth.principals`` holding the approver role of the side. No ``from __future__ import
annotations`` here: Typer reads the file argument's type, made for each kind, at once.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.cli import on_db, principal, show, show_diff, signed_and_activated, stdout
from shared.config import Settings
from shared.cosign import store
from shared.cosign.kind import Kind

AsOption = Annotated[str, typer.Option("--as", help="Who is acting (a principal's name)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def add_commands(
    app: typer.Typer, kind: Kind, *, file_help: str, validate_help: str | None = None
) -> None:
    """``propose``, ``approve``, ``activate``, ``diff`` and ``history`` for ``kind`` on ``app``;
    with ``validate_help``, ``validate`` first (its help), checking a file with the kind's own
    ``validate`` (a kind that checks otherwise adds its own, and anything else)."""
    FileArgument = Annotated[  # noqa: N806 - a type
        Path, typer.Argument(exists=True, dir_okay=False, help=file_help)
    ]

    if validate_help is not None:

        @app.command(help=validate_help)
        def validate(path: FileArgument, as_json: JsonOption = False) -> None:
            text = path.read_text(encoding="utf-8")

            async def work(session: AsyncSession, _settings: Settings) -> dict[str, Any]:
                validated = await kind.validate(session, text)
                return {"valid": True, "content_hash": validated.content_hash, **validated.extra}

            show(on_db(work, write=False), as_json)

    @app.command(
        help=f"Store a {kind.noun} file as a new proposed version (its content never changes "
        "after)."
    )
    def propose(
        path: FileArgument,
        by: AsOption,
        note: Annotated[str, typer.Option(help="What changes and why")] = "",
        as_json: JsonOption = False,
    ) -> None:
        text = path.read_text(encoding="utf-8")

        async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
            now = datetime.now(UTC)
            row = await store.propose(session, kind, text, by=by, note=note, now=now)
            return store.view(kind, row, [])

        show(on_db(work, write=True), as_json)

    @app.command()
    def approve(
        version: int,
        by: AsOption,
        side: Annotated[str, typer.Option(help="marketing or sales")],
        content_hash: Annotated[
            str, typer.Option("--hash", help="SHA-256 of the content reviewed")
        ],
    ) -> None:
        """Sign a version for your side; the hash must be the content you reviewed."""

        async def work(session: AsyncSession, settings: Settings) -> str:
            await store.approve(
                session,
                kind,
                version,
                caller=principal(settings, by),
                side=side,
                signed_hash=content_hash,
                now=datetime.now(UTC),
            )
            return f"{kind.noun} version {version} approved for {side} by {by}"

        typer.echo(on_db(work, write=True))

    @app.command(
        help="Make a version co-signed by marketing and sales the live one (emits "
        f"{kind.announces})."
    )
    def activate(version: int, by: AsOption, as_json: JsonOption = False) -> None:

        async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
            now = datetime.now(UTC)
            row = await store.activate(session, settings, kind, version, by=by, now=now)
            return store.view(kind, row, await store.approvals_of(session, row))

        show(on_db(work, write=True), as_json)

    @app.command()
    def diff(
        version: int,
        against: Annotated[int | None, typer.Option(help="Default: the active version")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Rules added, removed and changed, and the unified diff of the files."""

        async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
            old = against if against is not None else await store.active_version(session, kind)
            return await store.diff(session, kind, old, version)

        show_diff(on_db(work, write=False), as_json)

    @app.command()
    def history(as_json: JsonOption = False) -> None:
        """Every version, newest first: status, signatures, activation."""

        async def work(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
            return await store.history(session, kind)

        rows = on_db(work, write=False)
        if as_json:
            show(rows, True)
            return
        labels = ["label"] if kind.labelled else []
        table = Table("version", *labels, "status", "proposed by", "approvals", "activated")
        for row in rows:
            signed, activated = signed_and_activated(row)
            cells = [row["label"]] if kind.labelled else []
            table.add_row(
                str(row["version"]), *cells, row["status"], row["proposed_by"], signed, activated
            )
        stdout().print(table)
