"""The SLA monitor's consumer: lifecycle and engagement events open, meet and cancel clocks.

- ``lead.queued``: a pick-up clock for the queue.
- ``lead.routed``: the pick-up clock is met; the owner's first-response clock starts (and, for an
  MQL, the acceptance clock) when their working hours start if routing held the lead for them.
- ``lead.reassigned``: the old owner's clocks are cancelled (they stay, as history) and the new
  owner's start, or a pick-up clock if the lead went back to a queue.
- ``lead.outcome`` / ``lead.activity``: a response that a clock counts meets it; the first response
  starts the follow-up clock. Won or lost closes what is left.
- ``lead.disqualified``, ``lead.recycled``, ``lead.erased``: every open clock is cancelled.

Test leads get no clocks. With no SLA policies live, or none matching, no clock starts. Runs in
the consumer's transaction (deduplicated by event id there); never commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor import store
from services.sla_monitor.clocks import Opening, cancel, meet, start_clock
from services.sla_monitor.facts import sla_facts
from services.sla_monitor.models import SlaClock
from services.sla_monitor.policy import ALWAYS, OUTCOMES
from shared.calendars import BusinessCalendar
from shared.config import Settings
from shared.events import (
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

log = logging.getLogger(__name__)
OWNER_CLOCKS = ("first_response", "acceptance", "follow_up")
CLOSING_OUTCOMES = frozenset({"won", "lost"})


class SlaHandler:
    def __init__(self, settings: Settings, *, on_opened: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.policies = store.PolicyCache()
        self.on_opened = on_opened or (lambda: None)

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        if isinstance(event, LeadQueued):
            await self._queued(session, event, now)
        elif isinstance(event, LeadRouted):
            await self._routed(session, event, now)
        elif isinstance(event, LeadReassigned):
            await self._reassigned(session, event, now)
        elif isinstance(event, LeadOutcome | LeadActivity):
            await self._touched(session, event, now)
        elif isinstance(event, LeadDisqualified | LeadRecycled | LeadErased):
            reason = event.type.removeprefix("lead.")
            await self._cancel_all(session, event.data.lead_id, reason, now)

    async def _queued(self, session: AsyncSession, event: LeadQueued, now: datetime) -> None:
        data = event.data
        await self._cancel_all(session, data.lead_id, "queued", now)
        await self._open(session, data.lead_id, "pickup", event.time, data.team, None, None, now)

    async def _routed(self, session: AsyncSession, event: LeadRouted, now: datetime) -> None:
        data = event.data
        for row in await store.open_clocks(session, data.lead_id, kinds=["pickup"]):
            await meet(
                session, self.settings, row, response="routed", at=event.time,
                calendar=await self._calendar(session, row), now=now,
            )  # fmt: skip
        await self._cancel_all(session, data.lead_id, "rerouted", now)
        started = max(data.available_at or event.time, event.time)
        await self._open_owner(
            session, data.lead_id, started, data.team, data.owner_id, data.owner_email, now
        )

    async def _reassigned(
        self, session: AsyncSession, event: LeadReassigned, now: datetime
    ) -> None:
        data = event.data
        await self._cancel_all(session, data.lead_id, "reassigned", now)
        if data.owner_id is None:
            await self._open(
                session, data.lead_id, "pickup", event.time, data.team, None, None, now
            )
            return
        started = max(data.available_at or event.time, event.time)
        await self._open_owner(
            session, data.lead_id, started, data.team, data.owner_id, data.owner_email, now
        )

    async def _open_owner(
        self,
        session: AsyncSession,
        lead_id: UUID,
        started: datetime,
        team: str | None,
        owner_id: UUID,
        owner_email: str | None,
        now: datetime,
    ) -> None:
        opened = await self._open(
            session, lead_id, "first_response", started, team, owner_id, owner_email, now
        )
        lead = await store.lead_of(session, lead_id)
        if opened and lead is not None and lead.stage == "mql":
            await self._open(
                session, lead_id, "acceptance", started, team, owner_id, owner_email, now
            )

    async def _open(
        self,
        session: AsyncSession,
        lead_id: UUID,
        kind: str,
        started: datetime,
        team: str | None,
        owner_id: UUID | None,
        owner_email: str | None,
        now: datetime,
    ) -> SlaClock | None:
        active = await self.policies.active(session)
        lead = await store.lead_of(session, lead_id)
        if active is None or lead is None or lead.is_test or lead.erased_at is not None:
            return None
        version, policies = active
        facts = sla_facts(lead, await store.submissions_of(session, lead_id), team=team)
        policy = policies.choose(facts)
        if policy is None:
            return None
        system_s = (started - lead.created_at).total_seconds() if kind != "pickup" else None
        opening = Opening(
            lead_id, kind, started, owner_id, owner_email, team, lead.source,  # type: ignore[arg-type]
            system_time_s=max(system_s, 0.0) if system_s is not None else None,
        )  # fmt: skip
        row = await start_clock(
            session, self.settings, opening, policies=policies, version=version, policy=policy,
            now=now,
        )  # fmt: skip
        if row is not None:
            self.on_opened()
        return row

    async def _touched(
        self, session: AsyncSession, event: LeadOutcome | LeadActivity, now: datetime
    ) -> None:
        data = event.data
        response: str
        if isinstance(event, LeadOutcome):
            response = event.data.outcome
        elif event.data.detail.get("done") is False:
            return  # a call planned, not made
        else:
            response = event.data.kind
        first_met: SlaClock | None = None
        for row in await store.open_clocks(session, data.lead_id):
            if response in row.responses:
                calendar = await self._calendar(session, row)
                at = data.occurred_at
                await meet(session, self.settings, row, response=response, at=at,
                           calendar=calendar, now=now)  # fmt: skip
                first_met = row if row.kind == "first_response" else first_met
        if first_met is not None and first_met.owner_id is not None:
            await self._open(
                session, data.lead_id, "follow_up", max(data.occurred_at, first_met.started_at),
                first_met.team, first_met.owner_id, first_met.owner_email, now,
            )  # fmt: skip
        if response in CLOSING_OUTCOMES and response in OUTCOMES:
            await self._cancel_all(session, data.lead_id, response, now)

    async def _cancel_all(
        self, session: AsyncSession, lead_id: UUID, reason: str, now: datetime
    ) -> None:
        for row in await store.open_clocks(session, lead_id):
            await cancel(session, self.settings, row, reason=reason, now=now)

    async def _calendar(self, session: AsyncSession, row: SlaClock) -> BusinessCalendar:
        """The clock's calendar as the live policies name it (24/7 if they no longer do)."""
        active = await self.policies.active(session)
        calendars = active[1].calendars if active else {}
        return (
            calendars.get(row.calendar) or calendars.get(ALWAYS) or BusinessCalendar.always_open()
        )
