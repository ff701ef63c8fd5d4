"""Which CRM record each lead became, per CRM subscription: the CRM's webhooks name their record,
and this is how Leadflow finds the lead again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.models import CrmLink
from shared.db import among, upsert
from shared.models import table_of

crm_links = table_of(CrmLink)


async def remember(
    session: AsyncSession, subscription_id: UUID, records: Mapping[str, str], *, now: datetime
) -> None:
    """Lead id → record id, the latest wins (a CRM may merge records)."""
    if not records:
        return
    rows = [
        {
            "subscription_id": subscription_id,
            "lead_id": lead,
            "record_id": record,
            "updated_at": now,
        }
        for lead, record in sorted(records.items())
    ]
    statement = upsert(session, crm_links)
    statement = statement.on_conflict_do_update(
        index_elements=["subscription_id", "lead_id"],
        set_={
            "record_id": statement.excluded.record_id,
            "updated_at": statement.excluded.updated_at,
        },
    )
    await session.execute(statement, rows)


async def leads_of(
    session: AsyncSession, subscription_id: UUID, record_ids: list[str]
) -> dict[str, str]:
    """Record id → lead id, for the records of this subscription Leadflow knows."""
    if not record_ids:
        return {}
    query = select(CrmLink.record_id, CrmLink.lead_id).where(
        CrmLink.subscription_id == subscription_id,
        among(session, CrmLink.record_id, sorted(set(record_ids))),
    )
    return {str(record): str(lead) for record, lead in (await session.execute(query)).all()}
