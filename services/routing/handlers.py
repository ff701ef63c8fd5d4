"""Where routing hooks into event handling (all in the caller's transaction, never committing).

- ``after_scoring``: scoring calls it once per batch, after its own events are staged: leads that
  became qualified are routed (so ``lead.routed`` follows ``lead.mql`` in the outbox), leads
  rejected by their owner *as the wrong owner* are reassigned, closed leads are released.
- ``on_sla_escalated``: an SLA escalation moves the lead from an owner who did not respond.
- ``RoutingHandler``: a consumer handler for the SLA topic (``sla.escalated``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.service import (
    RoutingDecision,
    reassign_lead,
    release_lead,
    route_leads,
)
from shared.config import Settings
from shared.events import CloudEvent, LeadOutcome

QUALIFIED = frozenset({"mql", "sal", "sql"})
"""Reaching one of these routes a lead that has no owner yet (an MQL, usually)."""
CLOSED = frozenset({"won", "lost", "recycled", "disqualified"})
"""Reaching one of these takes the lead off its owner's open count."""
WRONG_OWNER = frozenset(
    {"wrong_owner", "wrong_territory", "wrong_language", "wrong_segment", "not_mine", "conflict"}
)
"""Rejection reasons that mean "not for me" rather than "not a good lead": reassign."""
ESCALATED = "sla.escalated"


async def after_scoring(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    moves: Iterable[dict[str, Any]],
    *,
    settings: Settings,
    now: datetime,
) -> list[RoutingDecision]:
    moves = list(moves)
    qualified = list(dict.fromkeys(m["lead_id"] for m in moves if m["to_stage"] in QUALIFIED))
    decisions = (
        await route_leads(session, qualified, now=now, settings=settings) if qualified else []
    )
    for move in moves:
        if move["to_stage"] in CLOSED:
            await release_lead(session, move["lead_id"])
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
    return decisions


def _wrong_owner(event: LeadOutcome) -> bool:
    data = event.data
    return data.outcome == "rejected" and not data.is_test and (data.reason or "") in WRONG_OWNER


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
    """Consumes the SLA topic; acts on ``sla.escalated`` (lead_id, owner_id, reason in data)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        if event.type != ESCALATED:
            return
        data = event.data
        lead_id = getattr(data, "lead_id", None)
        if lead_id is None:
            return
        if getattr(data, "reassign", True) is False:
            return
        await on_sla_escalated(
            session,
            lead_id,
            owner_id=getattr(data, "owner_id", None),
            reason=str(getattr(data, "reason", None) or getattr(data, "policy", "") or "breached"),
            now=now,
            settings=self.settings,
        )
