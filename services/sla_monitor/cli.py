"""``leadflow sla-policies …``: SLA policies versions (``validate`` here, the co-signing commands
from shared/cosign); ``leadflow sla …``: the open clocks by time left, a lead's clock history, and
acknowledging an escalation, straight on the database with the same functions as the API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor import store
from services.sla_monitor.api import view
from services.sla_monitor.clocks import acknowledge
from services.sla_monitor.schemas import ClockView
from services.sla_monitor.versions import SLA
from shared.cli import on_db, show, stdout
from shared.config import Settings
from shared.cosign.cli import add_commands
from shared.outbox import stage

sla_policies_app = typer.Typer(
    help="SLA policies versions: validate, propose, approve (one per side), activate, diff.",
    no_args_is_help=True,
)
sla_app = typer.Typer(help="SLA clocks: the board, a lead's history, acknowledge.")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


add_commands(
    sla_policies_app,
    SLA,
    file_help="SLA policies YAML",
    validate_help="Check a policies file: YAML, CEL conditions, calendars, contacts, durations.",
)


@sla_app.command("clocks")
def open_clocks(
    team: Annotated[str | None, typer.Option(help="Only this team's")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner's (email)")] = None,
    standing: Annotated[
        str | None, typer.Option(help="on_track, warned, breached or acknowledged")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Open clocks, least time left first."""

    async def work(session: AsyncSession, _settings: Settings) -> list[ClockView]:
        filters = {"team": team, "owner_email": owner}
        if standing is not None and standing not in store.STANDING:
            raise typer.BadParameter(f"{standing!r} is not one of {', '.join(store.STANDING)}")
        rows = await store.open_by_deadline(
            session, filters=filters, limit=limit, standing=standing
        )
        return [view(r, datetime.now(UTC)) for r in rows]

    _table(on_db(work, write=False), as_json)


@sla_app.command("history")
def history(lead_id: UUID, as_json: JsonOption = False) -> None:
    """Every clock of a lead, open and closed, oldest first."""

    async def work(session: AsyncSession, _settings: Settings) -> list[ClockView]:
        now = datetime.now(UTC)
        return [view(r, now) for r in await store.history_of(session, lead_id)]

    _table(on_db(work, write=False), as_json)


@sla_app.command("acknowledge")
def acknowledge_clock(
    clock_id: UUID,
    by: Annotated[str, typer.Option("--as", help="Who acknowledges (shown on the board)")],
    note: Annotated[str, typer.Option(help="What is being done about it")] = "",
) -> None:
    """Stop a clock's notify tiers still to come (the clock keeps counting)."""

    async def work(session: AsyncSession, settings: Settings) -> str:
        row = await store.clock(session, clock_id, lock=True)
        if row is None or row.state != "open":
            raise typer.BadParameter(f"no open SLA clock {clock_id}", param_hint="CLOCK_ID")
        announced = acknowledge(row, by=by, note=note, now=datetime.now(UTC))
        if announced is None:
            return f"already acknowledged by {row.acknowledged_by}"
        await stage(session, settings, announced)
        return "acknowledged"

    typer.echo(on_db(work, write=True))


def _table(clocks: list[ClockView], as_json: bool) -> None:
    if as_json:
        show([c.model_dump(mode="json") for c in clocks], True)
        return
    table = Table("clock", "lead", "kind", "standing", "owner", "team", "deadline", "left")
    for c in clocks:
        left = f"{c.time_left_s / 60:.0f} min" if c.time_left_s is not None else c.closed_reason
        table.add_row(
            str(c.id), str(c.lead_id), c.kind, c.standing, c.owner_email or "(queue)",
            c.team or "", c.deadline.isoformat(timespec="minutes"), left or "",
        )  # fmt: skip
    stdout().print(table)
