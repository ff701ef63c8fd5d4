"""The handoff service's queries: the leads as they stand, and each lead's last handoff.

A lead's last handoff is read with its row locked (PostgreSQL) for the transaction: a lead's
events come in order on one partition, so this only matters while a rebalance hands the partition
over, and then the second transaction waits and sees the first one's handoff. The first handoff
of a lead has no row to lock: two at once collide on the primary key. That is common, not rare:
the pending router hands a lead over in its routing transaction while the consumer handles the
same lead's ``lead.mql``. The consumer's handler then does its batch's handoffs again, from a
savepoint, and finds the router's (``HandoffHandler.handle_batch``); a router that loses is
redone without the handoff (``services.routing.pending``).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.handoff.decide import HandoffKey, LeadState
from services.handoff.models import LeadHandoff
from shared.db import among
from shared.models import Lead


async def lead_states(session: AsyncSession, lead_ids: Sequence[UUID]) -> dict[UUID, LeadState]:
    """The leads as they stand (gone ones left out); nothing locked."""
    query = select(
        Lead.id, Lead.stage, Lead.routing_status, Lead.owner_id, Lead.owner_team_id,
        Lead.is_test, Lead.quarantined, Lead.erased_at,
    ).where(among(session, Lead.id, sorted(set(lead_ids))))  # fmt: skip
    return {
        row.id: LeadState(
            stage=row.stage,
            routing_status=row.routing_status,
            owner_id=row.owner_id,
            team_id=row.owner_team_id,
            is_test=bool(row.is_test),
            quarantined=bool(row.quarantined),
            erased=row.erased_at is not None,
        )
        for row in await session.execute(query)
    }


async def last_handoffs(session: AsyncSession, lead_ids: Sequence[UUID]) -> dict[UUID, LeadHandoff]:
    """Each lead's last handoff, its row locked for this transaction."""
    query = (
        select(LeadHandoff)
        .where(among(session, LeadHandoff.lead_id, sorted(set(lead_ids))))
        .order_by(LeadHandoff.lead_id)
        .with_for_update()
    )
    return {row.lead_id: row for row in await session.scalars(query)}


def key_of_row(row: LeadHandoff | None) -> HandoffKey | None:
    return HandoffKey(row.stage, row.owner_id, row.team_id) if row is not None else None
