"""The stored reasons of every routing decision about a lead (``GET /v1/leads/{id}/explain``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import txn as routing_txn
from services.routing.models import Assignment
from shared.models import table_of

assignments_t = table_of(Assignment)


async def routing_explanation(session: AsyncSession, lead_id: UUID) -> list[dict[str, Any]]:
    """Every routing decision about the lead, oldest first, with its candidates and reasons."""
    txn = session.info.get(routing_txn.KEY)
    if txn is not None:
        await routing_txn.write_rows(session, txn)
    query = (
        select(assignments_t)
        .where(assignments_t.c.lead_id == lead_id)
        .order_by(assignments_t.c.decided_at, assignments_t.c.id)
    )
    return [
        {
            "decided_at": row.decided_at.isoformat(),
            "trigger": row.trigger,
            "outcome": row.outcome,
            "owner_id": _str(row.owner_id),
            "previous_owner_id": _str(row.previous_owner_id),
            "team_id": _str(row.team_id),
            "rule": row.rule,
            "ruleset_version": row.ruleset_version,
            "strategy": row.strategy,
            "is_expansion": row.is_expansion,
            "account_id": _str(row.account_id),
            "reason": row.reason,
            "available_at": row.available_at.isoformat() if row.available_at else None,
            "candidates": row.candidates,
        }
        for row in await session.execute(query)
    ]


def _str(value: UUID | None) -> str | None:
    return str(value) if value is not None else None
