"""What the ``leadflow`` subcommands that work straight on the database share: settings, one
runner (settings → engine → sessions, expected errors printed, exit 1), output, principals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Caller
from shared.config import S, Settings, SettingsError, load_settings
from shared.db import make_engine, make_sessions
from shared.problems import Problem

T = TypeVar("T")


def stdout() -> Console:
    """A console for one command's output, made when it prints: its width follows ``COLUMNS``
    and the terminal as they are then (a console made at import keeps the width it found)."""
    return Console()


Failures = Mapping[type[Exception], Callable[[Any], Iterable[str]]]
"""The errors a command expects (bad input, a refusal) and the lines that say what went wrong:
printed to stderr, exit status 1. Anything else is a bug and keeps its traceback."""


def problem_lines(problem: Problem) -> list[str]:
    """A problem's detail, then each rule problem it lists (``problems``: ruleset validation)."""
    return [f"{problem.detail or problem.title}"] + [
        f"  {item['rule']} (line {item['line']}): {item['reason']}"
        for item in problem.extra.get("problems", [])
    ]


PROBLEMS: Failures = {Problem: problem_lines}


def settings_or_exit(cls: type[S]) -> S:
    """``cls`` (a service's settings: ``leadflow`` checked the environment against every
    service's settings before the command ran)."""
    try:
        return load_settings(cls, strict=False)
    except SettingsError as error:
        typer.echo(f"leadflow: {error}", err=True)
        raise typer.Exit(2) from None


def with_sessions(
    work: Callable[[async_sessionmaker[AsyncSession], S], Awaitable[T]],
    *,
    settings: type[S] = Settings,  # type: ignore[assignment]
    failures: Failures = PROBLEMS,
) -> T:
    """Run ``work`` with a session factory on the configured database (settings → engine →
    sessions, the engine disposed after); ``failures`` are printed, each line after
    ``leadflow: ``, and exit 1. Every database subcommand runs through here."""
    loaded = settings_or_exit(settings)

    async def main() -> T:
        engine = make_engine(loaded.db)
        try:
            return await work(make_sessions(engine), loaded)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except tuple(failures) as error:
        kind = next(k for k in type(error).__mro__ if k in failures)
        first, *rest = failures[kind](error)
        typer.echo(f"leadflow: {first}", err=True)
        for line in rest:
            typer.echo(line, err=True)
        raise typer.Exit(1) from None


def on_db(
    work: Callable[[AsyncSession, S], Awaitable[T]],
    *,
    write: bool,
    settings: type[S] = Settings,  # type: ignore[assignment]
    failures: Failures = PROBLEMS,
) -> T:
    """``with_sessions`` on one session: in a transaction committed at the end when ``write``."""

    async def in_session(sessions: async_sessionmaker[AsyncSession], loaded: S) -> T:
        if write:
            async with sessions.begin() as session:
                return await work(session, loaded)
        async with sessions() as session:
            return await work(session, loaded)

    return with_sessions(in_session, settings=settings, failures=failures)


def show(data: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        stdout().print(data)


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
