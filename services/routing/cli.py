"""``leadflow owners …``: the owner directory from the server's shell; ``leadflow routing-rules
…``: routing rules versions (``validate`` here, the co-signing commands from shared/cosign).

The same service functions as the API, straight on the database; ``--json`` for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing import importer, store
from services.routing.assign import CLOSED_STAGES, route_leads
from services.routing.models import Membership, Rep, Team
from services.routing.reassign import reassign_lead
from services.routing.rules import RoutingInvalid
from services.routing.schemas import AccountIn, TeamIn
from services.routing.versions import ROUTING
from shared.cli import Failures, on_db, stdout, with_sessions
from shared.config import Settings
from shared.cosign.cli import add_commands
from shared.models import Lead

owners_app = typer.Typer(
    help="Owner directory: reps, teams, accounts, import (routing rules: leadflow routing-rules)."
)
T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _in_transaction(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> T:
    return on_db(work, write=True, failures=REFUSED)


def _refused(error: Exception) -> list[str]:
    return [str(error)]


REFUSED: Failures = {store.DirectoryInvalid: _refused, RoutingInvalid: _refused}


def _now() -> datetime:
    return datetime.now(UTC)


@owners_app.command("list")
def list_owners(as_json: JsonOption = False) -> None:
    """Every rep with its teams, weight, availability and open leads."""

    async def work(session: AsyncSession, _: Settings) -> list[dict[str, Any]]:
        teams: dict[UUID, list[str]] = {}
        for rep_id, name in await session.execute(
            select(Membership.rep_id, Team.name).join(Team, Team.id == Membership.team_id)
        ):
            teams.setdefault(rep_id, []).append(name)
        return [
            {
                "email": r.email,
                "name": r.name,
                "teams": sorted(teams.get(r.id, [])),
                "weight": r.weight,
                "status": r.status,
                "away_until": r.away_until.isoformat() if r.away_until else None,
                "open_leads": r.open_leads,
                "max_open": r.max_open,
                "time_zone": r.time_zone,
            }
            for r in await session.scalars(select(Rep).order_by(Rep.email))
        ]

    rows = _in_transaction(work)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("email", "name", "teams", "weight", "status", "away until", "open", "cap")
    for r in rows:
        table.add_row(
            r["email"],
            r["name"],
            ", ".join(r["teams"]),
            str(r["weight"]),
            r["status"],
            r["away_until"] or "",
            str(r["open_leads"]),
            "" if r["max_open"] is None else str(r["max_open"]),
        )
    stdout().print(table)


@owners_app.command("import")
def import_csv(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of reps")],
    as_json: JsonOption = False,
) -> None:
    """Create or update reps from a CSV file: every row is checked first; all or nothing."""
    reps, errors = importer.parse_reps(path.read_text(encoding="utf-8"))
    if errors:
        for error in errors:
            typer.echo(f"leadflow: {path}: {error}", err=True)
        raise typer.Exit(1)

    async def work(session: AsyncSession, _: Settings) -> importer.ImportReport:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=stdout(), disable=as_json) as bar:
            task = bar.add_task("importing reps", total=len(reps))
            return await importer.apply_reps(
                session, reps, _now(), progress=lambda n: bar.advance(task, n)
            )

    report = _in_transaction(work)
    result = {"imported": report.rows, "created_teams": report.created_teams}
    typer.echo(json.dumps(result) if as_json else f"imported {report.rows} reps")


@owners_app.command("team")
def put_team(
    name: str,
    strategy: Annotated[str, typer.Option(help="round_robin, least_loaded or capacity")] = (
        "round_robin"
    ),
    outside_hours: Annotated[str, typer.Option(help="skip or hold")] = "skip",
    kind: Annotated[str, typer.Option(help="team or queue")] = "team",
    manager: Annotated[str | None, typer.Option(help="Manager's email")] = None,
) -> None:
    """Create or update a team (pool) or queue."""
    try:
        team = TeamIn(
            name=name,
            strategy=strategy,
            outside_hours=outside_hours,
            kind=kind,
            manager_email=manager,
        )
    except ValueError as error:
        typer.echo(f"leadflow: {error}", err=True)
        raise typer.Exit(2) from None
    _in_transaction(lambda s, _: store.put_team(s, team, _now()))
    typer.echo(f"team {name} saved")


@owners_app.command("account")
def put_account(
    name: str,
    owner: Annotated[str, typer.Option(help="The account owner's email")],
    domain: Annotated[str | None, typer.Option(help="e.g. globex.com")] = None,
) -> None:
    """Create or update a customer account: its leads go to its owner (expansion)."""
    account = AccountIn(name=name, domain=domain, owner_email=owner)
    _in_transaction(lambda s, _: store.put_account(s, account, _now()))
    typer.echo(f"account {name} saved")


@owners_app.command("away")
def away(
    email: str,
    until: Annotated[
        datetime | None, typer.Option(help="On leave until (ISO, with offset)")
    ] = None,
    back: Annotated[bool, typer.Option("--back", help="Back from leave now")] = False,
) -> None:
    """Mark a rep on leave until a time, or back now."""
    if (until is None) == (not back):
        typer.echo("leadflow: give --until or --back", err=True)
        raise typer.Exit(2)
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    _in_transaction(
        lambda s, _: store.set_availability(s, email, _now(), away_until=until, back=back)
    )
    typer.echo(f"{email}: " + ("back" if back else f"away until {until}"))


@owners_app.command("deactivate")
def deactivate(email: str, undo: Annotated[bool, typer.Option("--undo")] = False) -> None:
    """Deactivate a rep (gets no more leads; their open leads stay theirs)."""
    status = "active" if undo else "deactivated"
    _in_transaction(lambda s, _: store.set_availability(s, email, _now(), status=status))
    typer.echo(f"{email}: {status}")


@owners_app.command("reassign")
def reassign(
    lead_id: UUID,
    reason: Annotated[str, typer.Option(help="Why (kept with the assignment)")],
) -> None:
    """Route a lead again, excluding everyone who has held it."""
    decision = _in_transaction(
        lambda s, settings: reassign_lead(
            s, lead_id, now=_now(), settings=settings, trigger="requested", why=reason
        )
    )
    typer.echo(f"{decision.outcome}: {decision.reason}")


@owners_app.command("route-pending")
def route_pending(as_json: JsonOption = False) -> None:
    """Route qualified leads that have no routing yet (e.g. from before the first team, or
    whose routing failed), and retry queued ones."""

    async def work(
        sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> dict[str, int]:
        query = select(Lead.id, Lead.routing_status).where(
            Lead.stage.in_(("mql", "sal", "sql")),
            Lead.routing_status.is_(None)
            | Lead.routing_status.in_(("pending", "failed", "queued")),
        )
        async with sessions() as session:
            waiting = (await session.execute(query)).all()
        counts: dict[str, int] = {}
        for trigger in ("qualified", "queue"):  # the queued ones retried
            lead_ids = [i for i, status in waiting if (status == "queued") == (trigger == "queue")]
            if not lead_ids:
                continue
            # One call in its transaction: its routing locks taken in one step (txn.py).
            async with sessions.begin() as session:
                decisions = await route_leads(
                    session, lead_ids, now=_now(), settings=settings, trigger=trigger
                )
            for decision in decisions:
                counts[decision.outcome] = counts.get(decision.outcome, 0) + 1
        return counts

    counts = with_sessions(work, failures=REFUSED)
    typer.echo(json.dumps(counts) if as_json else ", ".join(f"{k}: {v}" for k, v in counts.items()))


@owners_app.command("recount")
def recount() -> None:
    """Rebuild every rep's open-lead count from the leads table."""
    closed = tuple(sorted(CLOSED_STAGES))
    changed = _in_transaction(lambda s, _: store.recount_open_leads(s, closed))
    typer.echo(f"{changed} reps corrected")


routing_rules_app = typer.Typer(
    help="Routing rules versions: validate, propose, approve (both sides), activate.",
    no_args_is_help=True,
)


add_commands(
    routing_rules_app,
    ROUTING,
    file_help="Routing rules YAML",
    validate_help="Check a rules file: YAML, CEL conditions, and teams that exist.",
)
