"""Reading a lead back, with its inquiries and history (storing is ``store``'s)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.schemas import (
    HistoryEntry,
    InquiryView,
    LeadView,
)
from shared.models import Inquiry, Lead, LeadHistory

SHOWN = ("title", "utm", "page_url", "referrer", "consent")
"""What a lead's view shows of each inquiry's stored submission, beside ``custom``."""


async def find_lead(session: AsyncSession, lead_id: UUID) -> LeadView | None:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        return None
    received = await session.scalars(
        select(Inquiry).where(Inquiry.lead_id == lead_id).order_by(Inquiry.received_at)
    )
    timeline = await session.scalars(
        select(LeadHistory)
        .where(LeadHistory.lead_id == lead_id)
        .order_by(LeadHistory.occurred_at, LeadHistory.id)
    )
    return LeadView(
        id=lead.id,
        email=lead.email,
        phone=lead.phone,
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        country=lead.country,
        company_domain=lead.company_domain,
        source=lead.source,
        stage=lead.stage,
        score=lead.score,
        ruleset=lead.ruleset,
        scored_at=lead.scored_at,
        quarantined=lead.quarantined,
        erased_at=lead.erased_at,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
        inquiries=[
            InquiryView.model_validate(
                {
                    **{name: i.submission.get(name) for name in SHOWN if i.submission},
                    "custom": (i.submission or {}).get("custom") or {},
                    "id": i.id,
                    "source": i.source,
                    "received_at": i.received_at,
                    "quarantine_reason": i.quarantine_reason,
                }
            )
            for i in received
        ],
        history=[
            HistoryEntry(occurred_at=h.occurred_at, kind=h.kind, detail=h.detail) for h in timeline
        ],
    )
