"""What the ``leadflow`` subcommands that work straight on the database share: settings, a
session (in a transaction when writing), problems printed as one line, principals by name."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Caller
from shared.config import Settings, SettingsError, load_settings
from shared.db import make_engine, make_sessions
from shared.problems import Problem

T = TypeVar("T")
console = Console()


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        typer.echo(f"leadflow: {error}", err=True)
        raise typer.Exit(2) from None


def on_db(work: Callable[[AsyncSession, Settings], Awaitable[T]], *, write: bool) -> T:
    """Run ``work`` on a session (committed at the end when ``write``); a ``Problem`` it raises
    is printed with the problems it lists and exits 1."""
    settings = settings_or_exit()

    async def main() -> T:
        engine = make_engine(settings.db)
        try:
            sessions = make_sessions(engine)
            if write:
                async with sessions.begin() as session:
                    return await work(session, settings)
            async with sessions() as session:
                return await work(session, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except Problem as problem:
        typer.echo(f"leadflow: {problem.detail or problem.title}", err=True)
        for item in problem.extra.get("problems", []):
            typer.echo(f"  {item['rule']} (line {item['line']}): {item['reason']}", err=True)
        raise typer.Exit(1) from None


def show(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        console.print(data)


def show_diff(result: dict[str, Any], as_json: bool) -> None:
    """A comparison of two versions of co-signed rules (``shared.cosign.compare``)."""
    if as_json:
        show(result, True)
        return
    for key in ("added", "removed", "changed"):
        typer.echo(f"{key}: {', '.join(result[key]) or '-'}")
    typer.echo(result["diff"])


def signed_and_activated(row: dict[str, Any]) -> tuple[str, str]:
    """A version's approvals and its activation, as two cells of a history table."""
    signed = ", ".join(f"{a['side']}: {a['approver']}" for a in row["approvals"])
    activated = (
        f"{row['activated_at']:%Y-%m-%d %H:%M} by {row['activated_by']}"
        if row["activated_at"]
        else ""
    )
    return signed, activated


def principal(settings: Settings, name: str) -> Caller:
    """The principal called ``name`` in ``auth.principals``, with its roles (``--as NAME``)."""
    for found in settings.auth.principals:
        if found.name == name:
            return Caller(found.name, frozenset(found.roles))
    detail = f"no principal named {name!r} in auth.principals (LEADFLOW_AUTH__PRINCIPALS)"
    raise Problem(403, "Forbidden", detail, field="as")
