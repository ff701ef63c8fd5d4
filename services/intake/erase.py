"""Erasing a person: personal data goes, the anonymous funnel facts stay.

Kept: the lead's id, source, stage, scores, flags and timestamps; each inquiry's source, time and
campaign parameters (``utm``); the history's kinds and times. Gone: the lead's contact columns,
every inquiry's raw body and personal fields, personal keys in history details. A ``lead.erased``
event tells every consumer (webhooks forward it to CRMs) in the same transaction.

The copies go in that transaction too: the properties of the lead's activities and outcomes (their
kinds, times, reasons and amounts stay), its ad-platform records' details but the campaign ids,
personal keys in the events still held in the outbox and in webhook messages (an activity's
``detail`` entirely), and the receivers' answers logged with the webhook attempts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.platform_models import LeadActivityRow, LeadOutcomeRow, PlatformLead
from services.webhooks.models import DeliveryAttempt, WebhookMessage
from shared.config import Settings
from shared.events import LeadErased, LeadErasedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage, table_of
from shared.outbox import stage

leads, inquiries, history = table_of(Lead), table_of(Inquiry), table_of(LeadHistory)
activities, outcomes = table_of(LeadActivityRow), table_of(LeadOutcomeRow)
platform_leads, outbox = table_of(PlatformLead), table_of(OutboxMessage)
messages, attempts = table_of(WebhookMessage), table_of(DeliveryAttempt)
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
KEPT_PLATFORM = frozenset(
    {
        "api_version",
        "form_id",
        "campaign_id",
        "adgroup_id",
        "creative_id",
        "asset_group_id",
        "ad_id",
        "page_id",
        "lead_stage",
        "created_time",
        "lead_submit_time",
    }
)
"""What an ad-platform record keeps: the campaign that brought the lead (not the click id)."""
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


def redact_event(payload: str) -> str:
    """An event as stored (a CloudEvent's JSON) without personal data: personal keys leave its
    ``data``, and an activity's ``detail`` (whatever the sender reported) goes entirely."""
    document = orjson.loads(payload)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        return payload
    data = redact(data)
    if document.get("type") == "lead.activity" and "detail" in data:
        data["detail"] = {}
    if data == document["data"]:
        return payload
    return orjson.dumps(document | {"data": data}).decode()


def anonymous_platform_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (detail or {}).items() if key in KEPT_PLATFORM}


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
        return row.erased_at
    await session.execute(
        update(leads)
        .where(leads.c.id == lead_id)
        .values(dict.fromkeys(PERSONAL_COLUMNS) | {"erased_at": now, "updated_at": now})
    )
    await _scrub(session, inquiries, "submission", lead_id, anonymous_submission, raw=True)
    await _scrub(session, history, "detail", lead_id, redact)
    await erase_copies(session, lead_id)
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


async def erase_copies(session: AsyncSession, lead_id: UUID) -> None:
    """The person's data held elsewhere: activities, outcomes, platform records, events."""
    for table in (activities, outcomes):
        await session.execute(update(table).where(table.c.lead_id == lead_id).values(properties={}))
    await _scrub_platform_records(session, lead_id)
    key = str(lead_id)
    # No index on outbox.aggregate_id: this reads the rows retained (outbox.retention_hours).
    await _scrub_payloads(session, outbox, outbox.c.aggregate_id == key)
    await _scrub_payloads(session, messages, messages.c.lead_id == key)
    await session.execute(
        update(attempts).where(attempts.c.lead_id == key).values(response_excerpt=None)
    )


async def _scrub_platform_records(session: AsyncSession, lead_id: UUID) -> None:
    columns = platform_leads.c
    rows = await session.execute(
        select(columns.platform, columns.platform_lead_id, columns.detail).where(
            columns.lead_id == lead_id
        )
    )
    for platform, platform_lead_id, detail in rows.all():
        await session.execute(
            update(platform_leads)
            .where(
                platform_leads.c.platform == platform,
                platform_leads.c.platform_lead_id == platform_lead_id,
            )
            .values(detail=anonymous_platform_detail(detail), error=None)
        )


async def _scrub_payloads(session: AsyncSession, table: Any, where: Any) -> None:
    rows = await session.execute(select(table.c.seq, table.c.payload).where(where))
    params = []
    for seq, payload in rows:
        cleaned = redact_event(payload)
        if cleaned != payload:
            params.append({"b_seq": seq, "b_payload": cleaned})
    if params:
        statement = update(table).where(table.c.seq == bindparam("b_seq"))
        await session.execute(statement.values(payload=bindparam("b_payload")), params)
