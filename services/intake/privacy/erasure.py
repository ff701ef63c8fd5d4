"""Erasing a person: personal data goes, the anonymous funnel facts stay.

Kept: the lead's id, source, stage, scores, flags and timestamps; each inquiry's source, time and
campaign parameters (``utm``); the history's kinds and times. Gone: the lead's contact columns,
every inquiry's raw body and personal fields, personal keys in history details. A ``lead.erased``
event tells every consumer (webhooks forward it to CRMs) in the same transaction.

The copies go in that transaction too: the properties of the lead's activities and outcomes (their
kinds, times, reasons and amounts stay), its ad-platform records' details but the campaign ids,
personal keys in the events still held in the outbox (an activity's ``detail`` entirely); and
what the other services hold, by the steps they contribute (``shared.privacy.ErasureStep``: the
webhook messages and the receivers' answers logged with their attempts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import LeadActivityRow, LeadOutcomeRow, PlatformLead
from services.intake.settings import IntakeConfig
from shared.events import LeadErased, LeadErasedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage, table_of
from shared.outbox import stage
from shared.privacy import ErasureStep, redact, scrub_payloads

leads, inquiries, history = table_of(Lead), table_of(Inquiry), table_of(LeadHistory)
activities, outcomes = table_of(LeadActivityRow), table_of(LeadOutcomeRow)
platform_leads, outbox = table_of(PlatformLead), table_of(OutboxMessage)
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


def anonymous_submission(submission: dict[str, Any] | None) -> dict[str, Any]:
    """What an inquiry keeps: where it came from and the campaign that brought it."""
    return {key: value for key, value in (submission or {}).items() if key in KEPT_SUBMISSION}


def anonymous_platform_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    return {key: value for key, value in (detail or {}).items() if key in KEPT_PLATFORM}


async def erase_lead(
    session: AsyncSession,
    lead_id: UUID,
    *,
    settings: IntakeConfig,
    now: datetime,
    steps: Sequence[ErasureStep] = (),
) -> datetime | None:
    """Erase in the caller's transaction, with the other services' ``steps``; returns when it
    was erased (the first time: erasing twice changes nothing and emits nothing), or ``None`` if
    there is no such lead."""
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
    for step in steps:
        await step(session, lead_id)
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
    """The person's data held elsewhere in intake: activities, outcomes, platform records, and
    the events still in the outbox."""
    for table in (activities, outcomes):
        await session.execute(update(table).where(table.c.lead_id == lead_id).values(properties={}))
    await _scrub_platform_records(session, lead_id)
    key = str(lead_id)
    # No index on outbox.aggregate_id: this reads the rows retained (outbox.retention_hours).
    await scrub_payloads(session, outbox, outbox.c.aggregate_id == key)


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
