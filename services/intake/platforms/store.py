"""Storing platform leads: once per platform lead id, in the same transaction as the inquiry.

The ``platform_leads`` row is inserted first (conflicts ignored). Whoever inserts it stores the
inquiry in the same transaction; a concurrent retry waits on the row (PostgreSQL) or on the write
lock (SQLite), then finds it and answers with what the first one answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import PlatformFetch, PlatformLead
from services.intake.schemas import LeadAccepted, LeadSubmission
from services.intake.settings import IntakeConfig
from services.intake.store import Arrival, store_inquiries
from shared.db import insert_ignoring_conflicts
from shared.ids import new_id
from shared.models import table_of

platform_leads = table_of(PlatformLead)
fetches = table_of(PlatformFetch)


@dataclass(frozen=True, slots=True)
class PlatformArrival:
    platform: str
    platform_lead_id: str
    form_id: str | None
    is_test: bool
    detail: dict[str, Any]


async def claim(
    session: AsyncSession, arrival: PlatformArrival, *, status: str, now: datetime
) -> bool:
    """Record the platform lead id; False when it was already recorded (a retry)."""
    statement = (
        insert_ignoring_conflicts(session, platform_leads)
        .values(
            platform=arrival.platform,
            platform_lead_id=arrival.platform_lead_id,
            form_id=arrival.form_id,
            status=status,
            is_test=arrival.is_test,
            received_at=now,
            detail=arrival.detail,
        )
        .returning(platform_leads.c.platform_lead_id)
    )
    return (await session.execute(statement)).first() is not None


async def first_answer(session: AsyncSession, platform: str, lead_id: str) -> PlatformLead | None:
    return await session.get(PlatformLead, (platform, lead_id))


def answer_of(row: PlatformLead) -> LeadAccepted | None:
    if row.lead_id is None or row.inquiry_id is None:
        return None
    return LeadAccepted(lead_id=row.lead_id, inquiry_id=row.inquiry_id, new_lead=bool(row.new_lead))


async def store_platform_lead(
    session: AsyncSession,
    arrival: PlatformArrival,
    submission: LeadSubmission,
    *,
    settings: IntakeConfig,
    now: datetime,
    raw: dict[str, Any] | None = None,
) -> LeadAccepted:
    """The inquiry, through the same store as web forms, and the answer kept for retries.

    ``raw`` is the platform's body as received (without its key), kept beside the submission."""
    [accepted] = await store_inquiries(
        session, [Arrival(submission, now, is_test=arrival.is_test, raw=raw)], settings=settings
    )
    if not isinstance(accepted, LeadAccepted):
        raise accepted
    await session.execute(
        update(platform_leads)
        .where(
            platform_leads.c.platform == arrival.platform,
            platform_leads.c.platform_lead_id == arrival.platform_lead_id,
        )
        .values(
            status="stored",
            lead_id=accepted.lead_id,
            inquiry_id=accepted.inquiry_id,
            new_lead=accepted.new_lead,
            stored_at=now,
            error=None,
        )
    )
    return accepted


async def enqueue_fetches(
    session: AsyncSession, arrivals: Sequence[PlatformArrival], *, now: datetime
) -> int:
    """Claim each id and queue a fetch for the new ones; returns how many were new."""
    fresh = [a for a in arrivals if await claim(session, a, status="pending", now=now)]
    if fresh:
        rows = [
            {
                "id": new_id(),
                "platform": a.platform,
                "platform_lead_id": a.platform_lead_id,
                "form_id": a.form_id,
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
            for a in fresh
        ]
        await session.execute(insert(fetches), rows)
    return len(fresh)


async def mark_invalid(session: AsyncSession, fetch: PlatformFetch, error: str) -> None:
    """A lead that can never become a submission: kept with the reason, no longer retried."""
    await session.execute(delete(fetches).where(fetches.c.id == fetch.id))
    await session.execute(
        update(platform_leads)
        .where(
            platform_leads.c.platform == fetch.platform,
            platform_leads.c.platform_lead_id == fetch.platform_lead_id,
        )
        .values(status="invalid", error=error[:500])
    )


async def pending(session: AsyncSession, platform: str, lead_id: str) -> PlatformFetch | None:
    return await session.scalar(
        select(PlatformFetch).where(
            PlatformFetch.platform == platform, PlatformFetch.platform_lead_id == lead_id
        )
    )
