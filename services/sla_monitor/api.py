"""HTTP routes of the SLA monitor: the policies' versions (shared/cosign), the open clocks by
time left, a lead's clock history, breaches of a period, attainment, and acknowledgement.

Every route needs a secret key; acknowledging needs the ``ops`` or ``manager`` role (or an admin
key). Bad input is an RFC 9457 problem naming the field.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from services.sla_monitor import store
from services.sla_monitor.attainment import Outcome, attainment, met_in_time, time_left
from services.sla_monitor.clocks import PASSED_OVER, acknowledge
from services.sla_monitor.ladder import Tier
from services.sla_monitor.models import OPEN, SlaClock
from services.sla_monitor.schemas import (
    AcknowledgeIn,
    AttainmentView,
    ClockView,
    Standing,
    TierView,
)
from services.sla_monitor.versions import SLA
from shared import problems
from shared.auth import ADMIN, Caller, authenticate, secret_key
from shared.cosign.api import router_for
from shared.deps import RuntimeDep
from shared.events import ClockKind
from shared.outbox import stage
from shared.params import Instant
from shared.problems import Problem

ERRORS = problems.documented(401, 403, 404, 422)
ACKNOWLEDGERS = frozenset({ADMIN, "ops", "manager"})
"""Roles that may acknowledge an escalation."""
GROUPS = {"team": "team", "owner": "owner_email", "source": "source", "policy": "policy"}

router = APIRouter(prefix="/v1", tags=["sla"], responses=ERRORS, dependencies=[Depends(secret_key)])
router.include_router(router_for(SLA, prefix="/sla/policies", responses={409: problems.PROBLEM}))


def standing_of(row: SlaClock) -> str:
    """on_track, warned or breached while open; met or cancelled once closed."""
    if row.state != OPEN:
        return row.state
    if row.breached_at is not None:
        return "breached"
    return "warned" if row.next_tier > 1 else "on_track"


def view(row: SlaClock, now: datetime) -> ClockView:
    tiers = [(Tier.from_json(t), t.get(PASSED_OVER)) for t in row.tiers]
    return ClockView(
        **{name: getattr(row, name) for name in ClockView.model_fields if hasattr(row, name)}
        | {
            "time_left_s": time_left(row.deadline, now) if row.state == OPEN else None,
            "standing": standing_of(row),
            "tiers": [
                TierView(
                    index=t.index,
                    at=t.at,
                    step=t.step,
                    due=t.due,
                    notify=list(t.notify),
                    reassign=t.reassign,
                    fired=t.index < row.next_tier and passed is None,
                    passed_over=passed,
                )  # fmt: skip
                for t, passed in tiers
            ],
        }
    )


@router.get("/sla/clocks", response_model=list[ClockView], summary="Open clocks by time left")
async def open_clocks(
    runtime: RuntimeDep,
    team: str | None = None,
    owner: Annotated[str | None, Query(description="The owner's email")] = None,
    policy: str | None = None,
    kind: ClockKind | None = None,
    standing: Annotated[
        Standing | None,
        Query(description="on_track (no tier fired), warned, breached, acknowledged"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ClockView]:
    filters = {"team": team, "owner_email": owner, "policy": policy, "kind": kind}
    now = datetime.now(UTC)
    async with runtime.sessions() as session:
        rows = await store.open_by_deadline(
            session, filters=filters, limit=limit, standing=standing
        )
        return [view(r, now) for r in rows]


@router.get("/sla/clocks/{clock_id:uuid}", response_model=ClockView)
async def one_clock(clock_id: UUID, runtime: RuntimeDep) -> ClockView:
    async with runtime.sessions() as session:
        row = await store.clock(session, clock_id)
        if row is None:
            raise _no_clock(clock_id)
        return view(row, datetime.now(UTC))


@router.get("/sla/leads/{lead_id:uuid}/clocks", response_model=list[ClockView])
async def lead_clocks(lead_id: UUID, runtime: RuntimeDep) -> list[ClockView]:
    """Every clock of a lead, open and closed, oldest first (each owner's, after reassignment)."""
    async with runtime.sessions() as session:
        now = datetime.now(UTC)
        return [view(r, now) for r in await store.history_of(session, lead_id)]


@router.post(
    "/sla/clocks/{clock_id:uuid}/acknowledge",
    response_model=ClockView,
    responses=problems.documented(409),
)
async def acknowledge_clock(
    clock_id: UUID,
    body: AcknowledgeIn,
    runtime: RuntimeDep,
    caller: Annotated[Caller, Depends(authenticate)],
) -> ClockView:
    """Stop the clock's notify tiers still to come; the clock keeps counting (idempotent)."""
    if not caller.roles & ACKNOWLEDGERS:
        raise Problem(
            403, "Forbidden", "acknowledging needs the ops or manager role, or an admin key"
        )
    now = datetime.now(UTC)
    async with runtime.sessions.begin() as session:
        row = await store.clock(session, clock_id, lock=True)
        if row is None:
            raise _no_clock(clock_id)
        if row.state != OPEN:
            raise Problem(409, "Conflict", f"clock {clock_id} is {row.state}, not open")
        announced = acknowledge(row, by=caller.name, note=body.note, now=now)
        if announced is not None:
            await stage(session, runtime.settings, announced)
        answer = view(row, now)
    runtime.notify_relay()
    return answer


@router.get("/sla/breaches", response_model=list[ClockView], summary="Breaches of a period")
async def breaches(
    runtime: RuntimeDep,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[ClockView]:
    """Clocks breached in the period (default: the last 24 hours), with their escalations."""
    start, end = _period(since, until)
    async with runtime.sessions() as session:
        rows = await store.breached_between(session, start, end, limit=limit)
        return [view(r, datetime.now(UTC)) for r in rows]


@router.get("/sla/attainment", response_model=list[AttainmentView])
async def attainment_by(
    runtime: RuntimeDep,
    by: Literal["team", "owner", "source", "policy"] = "team",
    kind: ClockKind = "first_response",
    since: Instant | None = None,
    until: Instant | None = None,
) -> list[AttainmentView]:
    """Attainment % and time-to-response p50/p90 (owner time beside system time) by group, over
    the clocks decided in the period (default: the last 30 days)."""
    start, end = _period(since, until, default=timedelta(days=30))
    async with runtime.sessions() as session:
        rows = await store.decided_between(session, start, end, kind=kind)
    column = GROUPS[by]
    outcomes = [
        Outcome(
            group=str(getattr(r, column) or "(none)"),
            met_in_time=met_in_time(r.state, r.closed_at, r.deadline),
            working_time_s=r.working_time_s,
            system_time_s=r.system_time_s,
        )
        for r in rows
    ]
    return [AttainmentView(**asdict(line)) for line in attainment(outcomes)]


def _period(
    since: datetime | None, until: datetime | None, *, default: timedelta = timedelta(days=1)
) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, "Unprocessable Content", f"{name} needs a time zone", field=name)
    end = until or datetime.now(UTC)
    start = since or end - default
    if start >= end:
        raise Problem(422, "Unprocessable Content", "since must be before until", field="since")
    return start, end


def _no_clock(clock_id: UUID) -> Problem:
    return Problem(404, "Not Found", f"no SLA clock {clock_id}", field="clock_id")
