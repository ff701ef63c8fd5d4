"""What each lifecycle and engagement event does to a lead's clocks. Pure: the leads, their open
clocks and the live policies are loaded before (store.tracking_state), the new clocks and the
events come out after (handlers.py adds and stages them), in one transaction per batch.

- ``lead.queued``: a pick-up clock for the queue.
- ``lead.routed``: the pick-up clock is met; the owner's first-response clock starts (and, for an
  MQL, the acceptance clock), when their working hours start if routing held the lead for them.
- ``lead.reassigned``: the old owner's clocks are cancelled (they stay, as history) and the new
  owner's start, or a pick-up clock if the lead went back to a queue.
- ``lead.outcome`` / ``lead.activity``: a response that a clock counts meets it; the first response
  starts the follow-up clock. Won or lost closes what is left.
- ``lead.disqualified``, ``lead.recycled``, ``lead.erased``: every open clock is cancelled.

A clock closes at the time of the event that closes it (the response's ``occurred_at``, the
lifecycle event's ``time``), not when it is applied: the tiers that fell due before then and
that the sweep had not fired yet settle as it closes (clocks.py).

Test and erased leads get no clocks; with no SLA policies live, or none matching, none starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from services.sla_monitor.clocks import (
    Clock,
    NewClock,
    Opening,
    Planned,
    cancel,
    meet,
    plan_deadline,
    start_clock,
)
from services.sla_monitor.facts import sla_facts
from services.sla_monitor.models import SlaTouch
from services.sla_monitor.policy import ALWAYS, CompiledPolicies, PolicySpec
from shared.calendars import BusinessCalendar
from shared.events import (
    ClockKind,
    CloudEvent,
    LeadActivity,
    LeadDisqualified,
    LeadErased,
    LeadOutcome,
    LeadQueued,
    LeadReassigned,
    LeadRecycled,
    LeadRouted,
)
from shared.ids import new_id

CLOSING_OUTCOMES = frozenset({"won", "lost"})
TRACKED = (
    LeadQueued, LeadRouted, LeadReassigned, LeadOutcome, LeadActivity, LeadDisqualified,
    LeadRecycled, LeadErased,
)  # fmt: skip


def plan_clock(
    opening: Opening,
    lead: Any,
    submissions: Sequence[Mapping[str, Any]],
    live: tuple[int, CompiledPolicies] | None,
    *,
    now: datetime,
) -> tuple[NewClock, CloudEvent] | None:
    """The clock ``opening`` asks for, as the live policies set it for ``lead`` (its row and its
    forms), and its ``sla.started``: None when no policy is live or applies, the policy sets no
    target of the kind, or the lead is a test or erased one. Nothing is added to a session."""
    policy = _policy(opening, lead, submissions, live)
    if live is None or policy is None:
        return None
    version, policies = live
    return start_clock(opening, policies=policies, version=version, policy=policy, now=now)


def planned_deadline(
    opening: Opening,
    lead: Any,
    submissions: Sequence[Mapping[str, Any]],
    live: tuple[int, CompiledPolicies] | None,
) -> Planned | None:
    """The deadline of the clock ``plan_clock`` would start, worked out alone."""
    policy = _policy(opening, lead, submissions, live)
    if live is None or policy is None:
        return None
    return plan_deadline(opening, policies=live[1], policy=policy)


def _policy(
    opening: Opening,
    lead: Any,
    submissions: Sequence[Mapping[str, Any]],
    live: tuple[int, CompiledPolicies] | None,
) -> PolicySpec | None:
    if live is None or lead.is_test or lead.erased_at is not None:
        return None
    return live[1].choose(sla_facts(lead, submissions, team=opening.team))


@dataclass
class LeadState:
    lead: Any
    """The lead's row (the columns ``sla_facts`` reads, ``is_test``, ``erased_at``)."""
    clocks: list[Clock] = field(default_factory=list)
    """Its open clocks, oldest first."""
    received: list[datetime] = field(default_factory=list)
    """When its inquiries arrived, oldest first."""
    submissions: list[dict[str, Any]] = field(default_factory=list)
    touches: list[SlaTouch] = field(default_factory=list)
    """Responses no clock counted yet, oldest first."""


@dataclass
class Tracker:
    leads: dict[UUID, LeadState]
    live: tuple[int, CompiledPolicies] | None
    now: datetime
    late_after: timedelta = timedelta(0)
    """A tier fired more than this after its due time is marked late."""
    events: list[CloudEvent] = field(default_factory=list)
    opened: list[NewClock] = field(default_factory=list)
    touched: list[SlaTouch] = field(default_factory=list)
    """Responses to keep: no open clock counted them (yet)."""
    used: list[SlaTouch] = field(default_factory=list)
    """Kept responses that a clock opened since has counted."""

    def apply(self, event: CloudEvent) -> None:
        state = self.leads.get(getattr(event.data, "lead_id", None))  # type: ignore[arg-type]
        if state is None:
            return
        if isinstance(event, LeadQueued):
            self._cancel_all(state, "queued", event.time)
            self._open(state, "pickup", event.time, event.data.team, None, None)
        elif isinstance(event, LeadRouted):
            self._routed(state, event)
        elif isinstance(event, LeadReassigned):
            self._reassigned(state, event)
        elif isinstance(event, LeadOutcome | LeadActivity):
            self._touched(state, event)
        elif isinstance(event, LeadDisqualified | LeadRecycled | LeadErased):
            self._cancel_all(state, event.type.removeprefix("lead."), event.time)

    def _routed(self, state: LeadState, event: LeadRouted) -> None:
        data = event.data
        for row in [c for c in state.clocks if c.kind == "pickup"]:
            self._meet(state, row, "routed", event.time)
        self._cancel_all(state, "rerouted", event.time)
        received = max((r for r in state.received if r <= event.time), default=None)
        system = (event.time - (received or state.lead.created_at)).total_seconds()
        started = max(data.available_at or event.time, event.time)
        self._open_owner(state, started, data.team, data.owner_id, data.owner_email, system)
        self._answered_already(state, since=event.time)

    def _reassigned(self, state: LeadState, event: LeadReassigned) -> None:
        data = event.data
        self._cancel_all(state, "reassigned", event.time)
        if data.owner_id is None:
            self._open(state, "pickup", event.time, data.team, None, None)
            return
        started = max(data.available_at or event.time, event.time)
        self._open_owner(state, started, data.team, data.owner_id, data.owner_email, None)
        self._answered_already(state, since=event.time)

    def _open_owner(
        self,
        state: LeadState,
        started: datetime,
        team: str | None,
        owner_id: UUID,
        owner_email: str | None,
        system_s: float | None,
    ) -> None:
        opening = (started, team, owner_id, owner_email)
        if self._open(state, "first_response", *opening, system_s=system_s):
            if state.lead.stage == "mql":
                self._open(state, "acceptance", *opening, system_s=system_s)

    def _open(
        self,
        state: LeadState,
        kind: ClockKind,
        started: datetime,
        team: str | None,
        owner_id: UUID | None,
        owner_email: str | None,
        *,
        system_s: float | None = None,
    ) -> bool:
        lead = state.lead
        system = max(system_s, 0.0) if system_s is not None else None
        opening = Opening(lead.id, kind, started, owner_id, owner_email, team, lead.source, system)
        found = plan_clock(opening, lead, state.submissions, self.live, now=self.now)
        if found is None:
            return False
        row, started_event = found
        state.clocks.append(row)
        self.opened.append(row)
        self.events.append(started_event)
        return True

    def _touched(self, state: LeadState, event: LeadOutcome | LeadActivity) -> None:
        if isinstance(event, LeadOutcome):
            response: str = event.data.outcome
        elif event.data.detail.get("done") is False:
            return  # a call planned, not made
        else:
            response = event.data.kind
        at = event.data.occurred_at
        counted = [c for c in state.clocks if response in c.responses]
        if not counted and self.live is not None and response in self.live[1].responses:
            touch = SlaTouch(id=new_id(), lead_id=state.lead.id, response=response,
                             occurred_at=at, created_at=self.now)  # fmt: skip
            state.touches.append(touch)
            self.touched.append(touch)
        self._count(state, counted, response, at)
        if response in CLOSING_OUTCOMES:
            self._cancel_all(state, response, at)

    def _answered_already(self, state: LeadState, *, since: datetime) -> None:
        """Responses applied before the clocks they answer (another topic, applied first)."""
        for touch in [t for t in state.touches if t.occurred_at >= since]:
            counted = [c for c in state.clocks if touch.response in c.responses]
            if counted:
                state.touches.remove(touch)
                if touch in self.touched:  # kept and used in this batch: never written
                    self.touched.remove(touch)
                else:
                    self.used.append(touch)
                self._count(state, counted, touch.response, touch.occurred_at)

    def _count(self, state: LeadState, counted: list[Clock], response: str, at: datetime) -> None:
        first_met = None
        for row in counted:
            self._meet(state, row, response, at)
            first_met = row if row.kind == "first_response" else first_met
        if first_met is not None and first_met.owner_id is not None:
            started = max(at, first_met.started_at)
            self._open(state, "follow_up", started, first_met.team, first_met.owner_id,
                       first_met.owner_email)  # fmt: skip

    def _meet(self, state: LeadState, row: Clock, response: str, at: datetime) -> None:
        calendar = self._calendar(row)
        self.events += meet(row, response=response, at=at, calendar=calendar, now=self.now,
                            late_after=self.late_after)  # fmt: skip
        state.clocks.remove(row)

    def _cancel_all(self, state: LeadState, reason: str, at: datetime) -> None:
        """Cancel every open clock of the lead at ``at`` (the event's own time)."""
        for row in state.clocks:
            self.events += cancel(row, reason=reason, at=at, now=self.now,
                                  late_after=self.late_after)  # fmt: skip
        state.clocks.clear()

    def _calendar(self, row: Clock) -> BusinessCalendar:
        """The clock's calendar as the live policies name it (24/7 if they no longer do)."""
        calendars = self.live[1].calendars if self.live else {}
        found = calendars.get(row.calendar) or calendars.get(ALWAYS)
        return found or BusinessCalendar.always_open()
