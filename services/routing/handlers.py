"""Where routing hooks into event handling (all in the caller's transaction, never committing).

- ``after_scoring``: scoring calls it once per batch, after its own events are staged: leads that
  became qualified are marked pending (routed right after the commit: services/routing/pending.py),
  leads rejected by their owner *as the wrong owner* are reassigned (scoring keeps their stage:
  see ``lifecycle.by_outcome``), closed leads are released.
- ``on_sla_escalated``: an SLA escalation moves the lead from an owner who did not respond.
- ``RoutingHandler``: the consumer of the SLA topic (``sla.escalated``, shared/events/sla.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.assign import CLOSED_STAGES, RoutingDecision
from services.routing.pending import QUALIFIED, mark_pending
from services.routing.reassign import Reassignment, reassign_lead, reassign_leads
from shared.config import Settings
from shared.events import WRONG_OWNER_REASONS, CloudEvent, LeadOutcome, SlaEscalated

log = logging.getLogger(__name__)


async def after_scoring(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    moves: Iterable[dict[str, Any]],
    *,
    settings: Settings,
    now: datetime,
    wake: Callable[[], None] | None = None,
) -> list[RoutingDecision]:
    """The reassignments' decisions (routing the qualified leads comes after the commit: ``wake``
    is called once it is done, if it marked any lead pending)."""
    moves = list(moves)
    qualified = [m["lead_id"] for m in moves if m["to_stage"] in QUALIFIED]
    await mark_pending(session, qualified, wake=wake)
    rejected = [
        Reassignment(event.data.lead_id, "rejected", f"rejected by owner: {event.data.reason}")
        for event in events
        if isinstance(event, LeadOutcome) and _wrong_owner(event)
    ]
    # The closed leads' owners are locked with the reassignments' locks, in one step (txn.py).
    closed = [m["lead_id"] for m in moves if m["to_stage"] in CLOSED_STAGES]
    return await reassign_leads(session, rejected, now=now, settings=settings, release=closed)


def _wrong_owner(event: LeadOutcome) -> bool:
    data = event.data
    wrong = data.outcome == "rejected" and (data.reason or "") in WRONG_OWNER_REASONS
    return wrong and not data.is_test


async def on_sla_escalated(
    session: AsyncSession,
    lead_id: UUID,
    *,
    owner_id: UUID | None,
    reason: str,
    now: datetime,
    settings: Settings,
) -> RoutingDecision:
    """Reassign a lead whose owner let its SLA lapse; ignored if the owner changed meanwhile."""
    return await reassign_lead(
        session,
        lead_id,
        now=now,
        settings=settings,
        trigger="sla_escalation",
        why=f"SLA escalation: {reason}",
        expected_owner=owner_id,
    )


class RoutingHandler:
    """Consumes the SLA topic: an ``sla.escalated`` event asking for it reassigns the lead.
    A batch's escalations are reassigned together: one step of routing locks (txn.py)."""

    handles = (SlaEscalated,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[CloudEvent], *, session: AsyncSession, now: datetime
    ) -> None:
        escalations = [e for e in events if isinstance(e, SlaEscalated) and e.data.reassign]
        requests = [
            Reassignment(
                e.data.lead_id,
                "sla_escalation",
                f"SLA escalation: {e.data.policy} {e.data.reason}",
                expected_owner=e.data.owner_id,
            )
            for e in escalations
        ]
        decisions = await reassign_leads(
            session, requests, now=now, settings=self.settings, skip_missing=True
        )
        done = {decision.lead_id for decision in decisions}
        for event in escalations:
            if event.data.lead_id not in done:
                log.warning(
                    "sla.escalated %s names no lead %s; ignored", event.id, event.data.lead_id
                )
