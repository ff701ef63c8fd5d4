"""``leadflow keys …``: API keys, made straight on the database. A new key is printed once,
alone on stdout (``KEY=$(leadflow keys create --kind public --origin https://www.example.com)``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, TypeVar
from uuid import UUID

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.keys.store import create_key, list_keys, revoke_key
from shared.cli import on_db, stdout

keys_app = typer.Typer(help="API keys: public form keys and secret server keys.")
T = TypeVar("T")


class Kind(StrEnum):
    public = "public"
    secret = "secret"


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return on_db(lambda session, _settings: work(session), write=True)


@keys_app.command("create")
def create(
    kind: Annotated[Kind, typer.Option(help="public: for web forms; secret: for servers")],
    origin: Annotated[
        list[str] | None,
        typer.Option(help="A public key works only from this origin (repeatable)"),
    ] = None,
    name: Annotated[str, typer.Option(help="What the key is for")] = "",
    thank_you_url: Annotated[
        str | None, typer.Option(help="Public keys: where a plain HTML form post is redirected")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            help="Refuse a JSON lead's unknown fields (422) instead of keeping them as custom"
        ),
    ] = False,
) -> None:
    """Make a key and print it, alone (it is shown only this once; only its hash is kept)."""
    if thank_you_url and not thank_you_url.startswith(("https://", "http://")):
        typer.echo("leadflow: --thank-you-url must be an http(s) URL", err=True)
        raise typer.Exit(2)

    async def work(session: AsyncSession) -> str:
        key, _ = await create_key(
            session,
            kind=kind.value,
            now=datetime.now(UTC),
            origins=origin or (),
            name=name,
            thank_you_url=thank_you_url,
            strict=strict,
        )
        return key

    try:
        typer.echo(_in_transaction(work))
    except ValueError as error:
        typer.echo(f"leadflow: {error}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Every key: id, kind, prefix, origins, created and revoked times (never the key)."""

    async def work(session: AsyncSession) -> list[dict[str, object]]:
        return [
            {
                "id": str(row.id),
                "kind": row.kind,
                "prefix": row.prefix,
                "name": row.name,
                "allowed_origins": row.allowed_origins,
                "thank_you_url": row.thank_you_url,
                "strict": row.strict,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in await list_keys(session)
        ]

    rows = _in_transaction(work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "kind", "prefix", "name", "origins", "revoked")
    for row in rows:
        origins = ", ".join(row["allowed_origins"]) or "any"  # type: ignore[arg-type]
        table.add_row(
            str(row["id"]),
            str(row["kind"]),
            str(row["prefix"]) + "…",
            str(row["name"]),
            origins,
            str(row["revoked_at"] or ""),
        )
    stdout().print(table)


@keys_app.command("revoke")
def revoke(key_id: Annotated[UUID, typer.Argument(help="The key's id (see `keys list`)")]) -> None:
    """Revoke a key; running services stop accepting it within LEADFLOW_INTAKE__KEY_CACHE_S."""

    async def work(session: AsyncSession) -> bool:
        return await revoke_key(session, key_id, now=datetime.now(UTC))

    if not _in_transaction(work):
        typer.echo(f"leadflow: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")
