"""Erasing a person: personal data goes, the anonymous funnel facts stay.

Kept: the lead's id, source, stage, scores, flags and timestamps; each inquiry's source, time and
campaign parameters (``utm``); the history's kinds and times. Gone: the lead's contact columns,
every inquiry's raw body and personal fields, personal keys in history details. A ``lead.erased``
event tells every consumer (webhooks forward it to CRMs) in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import Settings
from shared.events import LeadErased, LeadErasedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory
from shared.outbox import stage

leads, inquiries, history = Lead.__table__, Inquiry.__table__, LeadHistory.__table__
SOURCE = "/leadflow/intake"
PERSONAL_COLUMNS = (
    "email",
    "phone",
    "phone_key",
    "first_name",
    "last_name",
    "company",
    "company_domain",
)
KEPT_SUBMISSION = ("source", "utm")
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "company",
        "title",
        "website",
        "company_domain",
        "ip_address",
        "address",
        "street_address",
        "city",
        "postal_code",
        "custom",
        "raw",
        "submission",
        "fields",
        "field_data",
        "user_column_data",
        "page_url",
        "referrer",
        "consent",
        "note",
        "notes",
    }
)


def anonymous_submission(submission: dict[str, Any] | None) -> dict[str, Any]:
    """What an inquiry keeps: where it came from and the campaign that brought it."""
    return {key: value for key, value in (submission or {}).items() if key in KEPT_SUBMISSION}


def redact(detail: Any) -> Any:
    """A history detail without personal keys, at any depth."""
    if isinstance(detail, dict):
        return {k: redact(v) for k, v in detail.items() if k not in PERSONAL_KEYS}
    if isinstance(detail, list):
        return [redact(item) for item in detail]
    return detail


async def erase_lead(
    session: AsyncSession, lead_id: UUID, *, settings: Settings, now: datetime
) -> datetime | None:
    """Erase in the caller's transaction; returns when it was erased (the first time: erasing
    twice changes nothing and emits nothing), or ``None`` if there is no such lead."""
    query = select(leads.c.erased_at).where(leads.c.id == lead_id).with_for_update()
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    if row.erased_at is not None:
        return row.erased_at  # type: ignore[no-any-return]
    await session.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(dict.fromkeys(PERSONAL_COLUMNS) | {"erased_at": now, "updated_at": now})
    )
    await _scrub(session, inquiries, "submission", lead_id, anonymous_submission, raw=True)
    await _scrub(session, history, "detail", lead_id, redact)
    event = LeadErased.about_lead(
        lead_id, LeadErasedData(lead_id=lead_id, reason="erasure request"), source=SOURCE, time=now
    )
    await session.execute(
        insert(history).values(
            id=new_id(),
            lead_id=lead_id,
            occurred_at=now,
            kind=event.type,
            event_id=event.id,
            detail={},
        )
    )
    await stage(session, settings, event)
    return now


async def _scrub(
    session: AsyncSession, table: Any, column: str, lead_id: UUID, clean: Any, raw: bool = False
) -> None:
    rows = await session.execute(
        select(table.c.id, table.c[column]).where(table.c.lead_id == lead_id)
    )
    params = [{"b_id": row_id, "b_value": clean(value)} for row_id, value in rows]
    if not params:
        return
    values: dict[str, Any] = {column: bindparam("b_value")}
    if raw:
        values["raw"] = None
    statement = update(table).where(table.c.id == bindparam("b_id")).values(values)
    await session.execute(statement, params)
