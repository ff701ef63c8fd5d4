"""What happens to a clock: it starts, its due tiers fire, it is met, cancelled or acknowledged.

Each function changes the clock's row (an ORM object; no query) and returns the events that
announce the change. The caller adds new rows to its session and stages the events in the outbox
in the same transaction, so a tier that fired is never lost and never fired twice.

Meeting or cancelling a clock first settles the tiers that fell due before the response or the
cancellation (by its own time) and that the sweep had not fired yet (ladder.settle): the monitor
was down, or its sweep had not come round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from services.sla_monitor.ladder import (
    Firing,
    Progress,
    Tier,
    fire_due,
    next_due,
    plan_ladder,
    settle,
)
from services.sla_monitor.metrics import TIERS_FIRED
from services.sla_monitor.models import CANCELLED, MET, OPEN, SlaClock
from services.sla_monitor.policy import DEFAULT_RESPONSES, CompiledPolicies, PolicySpec
from shared.calendars import BusinessCalendar
from shared.events import (
    ClockKind,
    CloudEvent,
    SlaAcknowledged,
    SlaAcknowledgedData,
    SlaBreached,
    SlaBreachedData,
    SlaCancelled,
    SlaCancelledData,
    SlaEscalated,
    SlaEscalatedData,
    SlaMet,
    SlaMetData,
    SlaStarted,
    SlaStartedData,
    SlaWarning,
    SlaWarningData,
)
from shared.ids import new_id

SOURCE = "/leadflow/sla-monitor"
PASSED_OVER = "passed_over"
"""Key of a tier's JSON (``sla_clocks.tiers``) naming why it was passed over, when it was."""


@dataclass(frozen=True, slots=True)
class Opening:
    """A clock to start: whose, for which lead, from when."""

    lead_id: UUID
    kind: ClockKind
    started_at: datetime
    owner_id: UUID | None = None
    owner_email: str | None = None
    team: str | None = None
    source: str | None = None
    system_time_s: float | None = None


@dataclass(slots=True, eq=False)
class NewClock:
    """A clock started in this batch, as a plain row (``sla_clocks``' columns, by name): the
    batch inserts its final state with the others in one statement. As an ORM object it cost
    more to build and flush than planning the clock did."""

    id: UUID
    lead_id: UUID
    kind: str
    state: str
    policy: str
    policy_version: int | None
    owner_id: UUID | None
    owner_email: str | None
    team: str | None
    source: str | None
    calendar: str
    started_at: datetime
    target_s: float
    deadline: datetime
    tiers: list[dict[str, Any]]
    responses: list[str]
    next_tier: int
    next_due_at: datetime | None
    system_time_s: float | None
    created_at: datetime
    updated_at: datetime
    breached_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    response: str | None = None
    working_time_s: float | None = None
    traceparent: str | None = None

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


Clock = SlaClock | NewClock
"""A clock read from the table (an ORM row) or started in this batch."""


@dataclass(frozen=True, slots=True)
class Planned:
    """The deadline a clock would have, without its tiers: what a handoff shows of it."""

    policy: str
    kind: ClockKind
    deadline: datetime
    target_s: float


def plan_deadline(
    opening: Opening, *, policies: CompiledPolicies, policy: PolicySpec
) -> Planned | None:
    """The deadline ``start_clock`` would set, worked out alone (no tiers, row or event)."""
    target = policy.target(opening.kind)
    if target is None:
        return None
    _, calendar = policies.calendar_for(policy, team=opening.team, owner_email=opening.owner_email)
    deadline = calendar.add(opening.started_at, target.target)
    return Planned(policy.id, opening.kind, deadline, target.target.total_seconds())


def start_clock(
    opening: Opening,
    *,
    policies: CompiledPolicies,
    version: int,
    policy: PolicySpec,
    now: datetime,
) -> tuple[NewClock, CloudEvent] | None:
    """A new clock and its ``sla.started``, if the policy sets a target of its kind (tier 0
    tells the owner)."""
    target = policy.target(opening.kind)
    if target is None:
        return None
    who = opening.owner_email, opening.team
    name, calendar = policies.calendar_for(policy, team=who[1], owner_email=who[0])

    def recipients(names: list[str]) -> list[str]:
        return policies.recipients(names, owner_email=who[0], team=who[1])

    deadline, tiers = plan_ladder(
        target, started=opening.started_at, calendar=calendar, recipients=recipients
    )
    row = NewClock(
        id=new_id(),
        lead_id=opening.lead_id,
        kind=opening.kind,
        state=OPEN,
        policy=policy.id,
        policy_version=version,
        owner_id=opening.owner_id,
        owner_email=opening.owner_email,
        team=opening.team,
        source=opening.source,
        calendar=name,
        started_at=opening.started_at,
        target_s=target.target.total_seconds(),
        deadline=deadline,
        tiers=[t.to_json() for t in tiers],
        responses=list(target.responses or DEFAULT_RESPONSES[opening.kind]),
        next_tier=1,
        next_due_at=next_due(tiers, 1),
        system_time_s=opening.system_time_s,
        created_at=now,
        updated_at=now,
    )
    notify = recipients(["owner"]) if opening.kind == "first_response" else []
    data = SlaStartedData(
        **_about(row),
        tier=0,
        at="0%",
        due_at=opening.started_at,
        notify=notify,
        started_at=opening.started_at,
        target_s=row.target_s,
        calendar=name,
        system_time_s=opening.system_time_s,
    )
    return row, _event(SlaStarted, row, data, now)


def fire(row: Clock, *, now: datetime, late_after: timedelta) -> list[CloudEvent]:
    """Fire the clock's tiers that are due at ``now``, each once: their events."""
    tiers = [Tier.from_json(t) for t in row.tiers]
    acknowledged = row.acknowledged_at is not None
    progress = fire_due(
        tiers, row.next_tier, now=now, acknowledged=acknowledged, late_after=late_after
    )
    return _record(row, tiers, progress, now)


def _settle(
    row: Clock, *, closed_at: datetime, closing: str, now: datetime, late_after: timedelta
) -> list[CloudEvent]:
    """The tiers that fell due before ``closed_at`` and never fired, as the clock closes."""
    tiers = [Tier.from_json(t) for t in row.tiers]
    progress = settle(
        tiers,
        row.next_tier,
        closed_at=closed_at,
        closing=closing,
        now=now,
        acknowledged=row.acknowledged_at is not None,
        late_after=late_after,
    )
    return _record(row, tiers, progress, now)


def _record(row: Clock, tiers: list[Tier], progress: Progress, now: datetime) -> list[CloudEvent]:
    """Move the clock past the tiers fired or passed over (the reason kept with each tier passed
    over, for the clock's view); the events of those fired."""
    if progress.next_index == row.next_tier:
        return []
    row.next_tier = progress.next_index
    row.next_due_at = next_due(tiers, row.next_tier) if row.state == OPEN else None
    row.updated_at = now
    if progress.passed:
        reasons = {p.tier.index: p.reason for p in progress.passed}
        row.tiers = [  # a new list: the JSON column is saved only when reassigned
            {**t, PASSED_OVER: reasons[t["index"]]} if t["index"] in reasons else t
            for t in row.tiers
        ]
    events = []
    for firing in progress.fired:
        TIERS_FIRED.labels(firing.tier.step).inc()
        if firing.tier.step == "breach":
            row.breached_at = firing.tier.due
        events.append(_announce(row, firing, now))
    return events


def _announce(row: Clock, firing: Firing, now: datetime) -> CloudEvent:
    tier = firing.tier
    common: dict[str, Any] = {
        **_about(row),
        "tier": tier.index,
        "at": tier.at,
        "due_at": tier.due,
        "late_by_s": round(firing.late_by.total_seconds(), 3),
        "late": firing.late,
        "notify": list(firing.notify),
    }
    if tier.step == "warning":
        return _event(SlaWarning, row, SlaWarningData(**common), now)
    if tier.step == "breach":
        return _event(SlaBreached, row, SlaBreachedData(**common), now)
    reason = f"{row.kind} breached ({tier.at})"
    if tier.reassign and not firing.reassign:
        reason += f"; not reassigned: {row.state} before it fired"
    data = SlaEscalatedData(
        **common,
        reason=reason,
        action="reassign" if firing.reassign else "notify",
        reassign=firing.reassign,
    )
    return _event(SlaEscalated, row, data, now)


def meet(
    row: Clock,
    *,
    response: str,
    at: datetime,
    calendar: BusinessCalendar,
    now: datetime,
    late_after: timedelta,
) -> list[CloudEvent]:
    """The owner responded at ``at``: the tiers due before it settle, then the clock stops,
    met (late, if after the deadline): the events, ``sla.met`` last."""
    responded = max(at, row.started_at)
    _close(row, MET, reason="met", at=responded, now=now)
    events = _settle(row, closed_at=responded, closing=MET, now=now, late_after=late_after)
    working = calendar.between(row.started_at, responded).total_seconds()
    row.response, row.working_time_s = response, working
    data = SlaMetData(
        **_about(row),
        responded_at=responded,
        response=response,
        working_time_s=working,
        elapsed_s=(responded - row.started_at).total_seconds(),
        breached=responded > row.deadline,
    )
    return [*events, _event(SlaMet, row, data, now)]


def cancel(
    row: Clock, *, reason: str, at: datetime, now: datetime, late_after: timedelta
) -> list[CloudEvent]:
    """The clock stops uncounted at ``at`` (the lead moved on: reassigned, disqualified, erased,
    won…), the tiers due before it settled first: the events, ``sla.cancelled`` last."""
    _close(row, CANCELLED, reason=reason, at=at, now=now)
    events = _settle(row, closed_at=at, closing=CANCELLED, now=now, late_after=late_after)
    data = SlaCancelledData(**_about(row), reason=reason)
    return [*events, _event(SlaCancelled, row, data, now)]


def acknowledge(row: Clock, *, by: str, note: str, now: datetime) -> CloudEvent | None:
    """Stop the ladder's notify tiers still to come (the clock keeps counting): the
    ``sla.acknowledged`` event, or None when the clock was acknowledged already."""
    if row.acknowledged_at is not None:
        return None
    row.acknowledged_at, row.acknowledged_by, row.updated_at = now, by, now
    data = SlaAcknowledgedData(**_about(row), by=by, note=note)
    return _event(SlaAcknowledged, row, data, now)


def _close(row: Clock, state: str, *, reason: str, at: datetime, now: datetime) -> None:
    row.state, row.closed_reason, row.closed_at = state, reason, at
    row.next_due_at, row.updated_at = None, now
    if at <= row.deadline:  # closed in time after all: a breach the sweep fired first is undone
        row.breached_at = None


def _about(row: Clock) -> dict[str, Any]:
    return {
        "lead_id": row.lead_id,
        "clock_id": row.id,
        "clock": row.kind,
        "policy": row.policy,
        "policy_version": row.policy_version,
        "owner_id": row.owner_id,
        "owner_email": row.owner_email,
        "team": row.team,
        "deadline": row.deadline,
    }


def _event(kind: type[CloudEvent], row: Clock, data: Any, now: datetime) -> CloudEvent:
    return kind.about_lead(row.lead_id, data, source=SOURCE, time=now)
