"""Intake's use cases: store an inquiry and its event in one transaction; read a lead back."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.schemas import (
    HistoryEntry,
    InquiryView,
    LeadAccepted,
    LeadSubmission,
    LeadView,
)
from shared.config import Settings
from shared.db import upsert
from shared.events import LeadReceived, LeadReceivedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory
from shared.outbox import stage

leads = Lead.__table__
inquiries = Inquiry.__table__
history = LeadHistory.__table__
SOURCE = "/leadflow/intake"


async def receive_lead(
    session: AsyncSession, submission: LeadSubmission, *, settings: Settings, now: datetime
) -> LeadAccepted:
    """Find or create the lead (by email), add the inquiry and stage ``lead.received``.

    The caller owns the transaction. The upsert locks the lead row, so two inquiries for one lead
    commit (and their events are sequenced) one after the other.
    """
    lead = await _find_or_create(session, submission, now=now)
    inquiry_id = new_id()
    await session.execute(
        insert(inquiries).values(
            id=inquiry_id,
            lead_id=lead.id,
            source=submission.source,
            received_at=now,
            submission=submission.model_dump(mode="json", exclude_none=True),
        )
    )
    event = LeadReceived.about_lead(
        lead.id,
        LeadReceivedData(
            lead_id=lead.id, inquiry_id=inquiry_id, source=submission.source, new_lead=lead.new
        ),
        source=SOURCE,
        time=now,
    )
    await session.execute(
        insert(history).values(
            id=new_id(),
            lead_id=lead.id,
            occurred_at=now,
            kind=event.type,
            event_id=event.id,
            detail={"inquiry_id": str(inquiry_id), "source": submission.source},
        )
    )
    await stage(session, settings, event)
    return LeadAccepted(lead_id=lead.id, inquiry_id=inquiry_id, new_lead=lead.new)


class _LeadRef(NamedTuple):
    id: UUID
    new: bool


async def _find_or_create(
    session: AsyncSession, submission: LeadSubmission, *, now: datetime
) -> _LeadRef:
    candidate = new_id()
    values = {
        "id": candidate,
        "email": submission.email,
        "phone": submission.phone,
        "first_name": submission.first_name,
        "last_name": submission.last_name,
        "company": submission.company,
        "source": submission.source,
        "stage": "inquiry",
        "created_at": now,
        "updated_at": now,
    }
    if submission.email is None:
        await session.execute(insert(leads).values(values))
        return _LeadRef(candidate, True)
    statement = upsert(session, leads).values(values)
    fresh = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[leads.c.email],
        set_={
            "phone": func.coalesce(fresh.phone, leads.c.phone),
            "first_name": func.coalesce(fresh.first_name, leads.c.first_name),
            "last_name": func.coalesce(fresh.last_name, leads.c.last_name),
            "company": func.coalesce(fresh.company, leads.c.company),
            "updated_at": fresh.updated_at,
        },
    ).returning(leads.c.id)
    lead_id = (await session.execute(statement)).scalar_one()
    return _LeadRef(lead_id, lead_id == candidate)


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
        source=lead.source,
        stage=lead.stage,
        score=lead.score,
        ruleset=lead.ruleset,
        scored_at=lead.scored_at,
        created_at=lead.created_at,
        updated_at=lead.updated_at,
        inquiries=[
            InquiryView(id=i.id, source=i.source, received_at=i.received_at) for i in received
        ],
        history=[
            HistoryEntry(occurred_at=h.occurred_at, kind=h.kind, detail=h.detail) for h in timeline
        ],
    )
