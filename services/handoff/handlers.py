"""The handoff's consumer of the lifecycle topic: the leads of a batch whose stage or owner may
have changed are read as they stand now, the rule (decide.py) says which are handed to sales,
their parts are gathered from the services that own them (parts.py), and each handoff's
``lead.qualified`` is staged in the outbox, in the consumer's transaction (which also records
the events as processed). Never commits.

The leads the scoring process's pending router has just given an owner or a queue are handed
over in the router's own transaction (``after_routing``), right after it staged ``lead.routed`` or
``lead.queued``, instead of after those events' trip through the outbox, the broker and back to
this consumer: one hop less on the way of a newly qualified lead. The consumer still receives those
events; it finds the handoff made (the lead's last handoff has the same key) and stages nothing.

``lead.recycled`` and ``lead.disqualified`` take the lead out of sales' hands: its last handoff
is forgotten, so a lead that qualifies again later is handed over anew (``qualified``), even to
the same owner. Any other event (``lead.erased``, ``lead.scored``…) hands nothing over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.handoff import store
from services.handoff.decide import HandoffKey, decide
from services.handoff.models import LeadHandoff
from services.handoff.parts import Parts, gather
from services.handoff.settings import HandoffConfig
from services.handoff.snapshot import qualified_event, snapshot, state_of
from shared.events import (
    CloudEvent,
    LeadDisqualified,
    LeadMql,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadRecycled,
    LeadRouted,
    LeadSql,
)
from shared.outbox import stage

CHANGES = (LeadMql, LeadSql, LeadRouted, LeadQueued, LeadReassigned)
"""Events after which a lead may stand in a new handoff."""
LEAVES = (LeadRecycled, LeadDisqualified)


class HandoffHandler:
    handles = CHANGES + LEAVES

    def __init__(self, settings: HandoffConfig, parts: Parts) -> None:
        self.settings = settings
        self.parts = parts
        self.public_url = settings.http.public_url

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[CloudEvent], *, session: AsyncSession, now: datetime
    ) -> None:
        changed = {e.data.lead_id for e in events if isinstance(e, CHANGES)}
        left = {e.data.lead_id for e in events if isinstance(e, LEAVES)}
        if not changed and not left:
            return
        try:
            async with session.begin_nested():
                await self._apply(session, changed, left, now)
        except IntegrityError:
            # A lead's first handoff collided with one committed since its last handoff was
            # read: the pending router's, made in its routing transaction. Once more, seeing it
            # (a failed batch would be applied again one event at a time, a transaction each).
            await self._apply(session, changed, left, now)

    async def _apply(
        self, session: AsyncSession, changed: set[UUID], left: set[UUID], now: datetime
    ) -> None:
        rows = await store.last_handoffs(session, sorted(changed | left))
        last = {i: None if i in left else store.key_of_row(r) for i, r in rows.items()}
        handed = await self._hand_over(session, sorted(changed), last, rows, now=now)
        for lead_id in left & rows.keys():
            if lead_id not in handed:
                await session.delete(rows[lead_id])

    async def after_routing(
        self, session: AsyncSession, lead_ids: list[UUID], now: datetime
    ) -> None:
        """In the pending router's transaction (``services.routing.pending.AfterRouting``): the
        handoff of the leads it has just placed, as their ``lead.routed``/``lead.queued`` would
        make it here."""
        rows = await store.last_handoffs(session, lead_ids)
        last = {i: store.key_of_row(r) for i, r in rows.items()}
        await self._hand_over(session, sorted(set(lead_ids)), last, rows, now=now)

    async def _hand_over(
        self,
        session: AsyncSession,
        lead_ids: list[UUID],
        last: dict[UUID, HandoffKey | None],
        rows: dict[UUID, LeadHandoff],
        *,
        now: datetime,
    ) -> set[UUID]:
        """Stage a ``lead.qualified`` for each lead that stands in a new handoff; their ids."""
        stages = self.settings.handoff.stages
        states = await store.lead_states(session, lead_ids)
        due = [i for i, s in states.items() if decide(s, last.get(i), stages) is not None]
        if not due:
            return set()
        found = await gather(session, self.parts, due, now=now)
        events: list[LeadQualified] = []
        for lead_id, parts in found.items():
            # Again on the parts: what the event says is what is remembered, even if the lead
            # moved between the two reads.
            decided = decide(state_of(parts), last.get(lead_id), stages)
            if decided is None:
                continue
            handoff, key = decided
            data = snapshot(lead_id, parts, handoff=handoff, public_url=self.public_url)
            event = qualified_event(data, now=now)
            _remember(session, rows.get(lead_id), lead_id, key, event, now)
            events.append(event)
        await stage(session, self.settings, *events)
        return {e.data.lead_id for e in events}


def _remember(
    session: AsyncSession,
    row: LeadHandoff | None,
    lead_id: UUID,
    key: HandoffKey,
    event: CloudEvent,
    now: datetime,
) -> None:
    if row is None:
        row = LeadHandoff(lead_id=lead_id)
        session.add(row)
    row.stage, row.owner_id, row.team_id = key.stage, key.owner_id, key.team_id
    row.event_id, row.handed_at = event.id, now
