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
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.assign import (
    CLOSED_STAGES,
    LeadNotFound,
    RoutingDecision,
    reassign_lead,
    release_leads,
)
from services.routing.pending import QUALIFIED, mark_pending
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
) -> list[RoutingDecision]:
    """The reassignments' decisions (routing the qualified leads comes after the commit)."""
    moves = list(moves)
    await mark_pending(session, [m["lead_id"] for m in moves if m["to_stage"] in QUALIFIED])
    decisions: list[RoutingDecision] = []
    for event in events:
        if isinstance(event, LeadOutcome) and _wrong_owner(event):
            decisions.append(
                await reassign_lead(
                    session,
                    event.data.lead_id,
                    now=now,
                    settings=settings,
                    trigger="rejected",
                    why=f"rejected by owner: {event.data.reason}",
                )
            )
    # After the reassignments (which take the routing lock): the lock, then reps' rows, always.
    await release_leads(session, [m["lead_id"] for m in moves if m["to_stage"] in CLOSED_STAGES])
    return decisions


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
    """Consumes the SLA topic: an ``sla.escalated`` event asking for it reassigns the lead."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        if not isinstance(event, SlaEscalated) or not event.data.reassign:
            return
        data = event.data
        try:
            await on_sla_escalated(
                session,
                data.lead_id,
                owner_id=data.owner_id,
                reason=f"{data.policy} {data.reason}",
                now=now,
                settings=self.settings,
            )
        except LeadNotFound:
            log.warning("sla.escalated %s names no lead %s; ignored", event.id, data.lead_id)
