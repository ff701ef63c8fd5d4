"""What happens to a clock: it starts, its due tiers fire, it is met, cancelled or acknowledged.

Each function changes the clock's row (an ORM object; no query) and returns the events that
announce the change. The caller adds new rows to its session and stages the events in the outbox
in the same transaction, so a tier that fired is never lost and never fired twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from services.sla_monitor.ladder import Firing, Tier, fire_due, next_due, plan_ladder
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
) -> tuple[SlaClock, CloudEvent] | None:
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
    row = SlaClock(
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


def fire(row: SlaClock, *, now: datetime, late_after: timedelta) -> list[CloudEvent]:
    """Fire the clock's tiers that are due at ``now``, each once: their events."""
    tiers = [Tier.from_json(t) for t in row.tiers]
    fired, row.next_tier = fire_due(
        tiers,
        row.next_tier,
        now=now,
        acknowledged=row.acknowledged_at is not None,
        late_after=late_after,
    )
    row.next_due_at = next_due(tiers, row.next_tier)
    row.updated_at = now
    events = []
    for firing in fired:
        TIERS_FIRED.labels(firing.tier.step).inc()
        if firing.tier.step == "breach":
            row.breached_at = firing.tier.due
        events.append(_announce(row, firing, now))
    return events


def _announce(row: SlaClock, firing: Firing, now: datetime) -> CloudEvent:
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
    data = SlaEscalatedData(
        **common,
        reason=f"{row.kind} breached ({tier.at})",
        action="reassign" if tier.reassign else "notify",
        reassign=tier.reassign,
    )
    return _event(SlaEscalated, row, data, now)


def meet(
    row: SlaClock,
    *,
    response: str,
    at: datetime,
    calendar: BusinessCalendar,
    now: datetime,
) -> CloudEvent:
    """The owner responded at ``at``: the clock stops, met (late, if after the deadline)."""
    responded = max(at, row.started_at)
    working = calendar.between(row.started_at, responded).total_seconds()
    _close(row, MET, reason="met", at=responded, now=now)
    row.response, row.working_time_s = response, working
    data = SlaMetData(
        **_about(row),
        responded_at=responded,
        response=response,
        working_time_s=working,
        elapsed_s=(responded - row.started_at).total_seconds(),
        breached=responded > row.deadline,
    )
    return _event(SlaMet, row, data, now)


def cancel(row: SlaClock, *, reason: str, now: datetime) -> CloudEvent:
    """The clock stops uncounted: the lead moved on (reassigned, disqualified, erased, won…)."""
    _close(row, CANCELLED, reason=reason, at=now, now=now)
    data = SlaCancelledData(**_about(row), reason=reason)
    return _event(SlaCancelled, row, data, now)


def acknowledge(row: SlaClock, *, by: str, note: str, now: datetime) -> CloudEvent | None:
    """Stop the ladder's notify tiers still to come (the clock keeps counting): the
    ``sla.acknowledged`` event, or None when the clock was acknowledged already."""
    if row.acknowledged_at is not None:
        return None
    row.acknowledged_at, row.acknowledged_by, row.updated_at = now, by, now
    data = SlaAcknowledgedData(**_about(row), by=by, note=note)
    return _event(SlaAcknowledged, row, data, now)


def _close(row: SlaClock, state: str, *, reason: str, at: datetime, now: datetime) -> None:
    row.state, row.closed_reason, row.closed_at = state, reason, at
    row.next_due_at, row.updated_at = None, now


def _about(row: SlaClock) -> dict[str, Any]:
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


def _event(kind: type[CloudEvent], row: SlaClock, data: Any, now: datetime) -> CloudEvent:
    return kind.about_lead(row.lead_id, data, source=SOURCE, time=now)
