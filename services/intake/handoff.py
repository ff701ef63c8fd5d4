"""Intake's part of a lead's handoff (``lead.qualified``): who the lead is, where it came from and
the consent its latest inquiry gave, for a batch of leads in three queries. Reads only.

The contact and company columns are the lead's (normalised, kept current by each inquiry); the
title, size, campaign, pages, consent and custom fields are what its latest inquiry said.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import PlatformLead
from shared.conditions import merged_answers
from shared.db import among
from shared.events import (
    HandoffAd,
    HandoffAttribution,
    HandoffCompany,
    HandoffConsent,
    HandoffContact,
)
from shared.models import Inquiry, Lead

SIZE_FIELDS = ("employees", "company_size")
"""Where a form gives the company's size (as scoring and the SLA policies read it)."""


@dataclass(frozen=True, slots=True)
class LeadIntake:
    contact: HandoffContact
    company: HandoffCompany
    attribution: HandoffAttribution
    consent: HandoffConsent | None
    custom: Mapping[str, Any] = field(default_factory=dict)
    is_test: bool = False
    quarantined: bool = False
    erased: bool = False


@dataclass(frozen=True, slots=True)
class InquiryRow:
    id: UUID
    source: str
    received_at: datetime
    submission: Mapping[str, Any]


async def lead_intake(
    session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
) -> dict[UUID, LeadIntake]:
    """Each lead's contact, company, attribution, consent and custom fields; a lead without an
    inquiry (none is) is left out."""
    ids = sorted(set(lead_ids))
    leads = {
        lead.id: lead
        for lead in await session.scalars(select(Lead).where(among(session, Lead.id, ids)))
    }
    inquiries: dict[UUID, list[InquiryRow]] = {}
    query = (
        select(Inquiry.id, Inquiry.lead_id, Inquiry.source, Inquiry.received_at, Inquiry.submission)
        .where(among(session, Inquiry.lead_id, ids))
        .order_by(Inquiry.lead_id, Inquiry.received_at, Inquiry.id)
    )
    for row in await session.execute(query):
        inquiries.setdefault(row.lead_id, []).append(
            InquiryRow(row.id, row.source, row.received_at, row.submission or {})
        )
    latest = [found[-1].id for found in inquiries.values()]
    ads = {
        ad.inquiry_id: ad
        for ad in await session.scalars(
            select(PlatformLead).where(among(session, PlatformLead.inquiry_id, latest))
        )
    }
    return {
        lead_id: lead_facts(lead, found, ads.get(found[-1].id))
        for lead_id, lead in leads.items()
        if (found := inquiries.get(lead_id))
    }


def lead_facts(lead: Lead, inquiries: Sequence[InquiryRow], ad: PlatformLead | None) -> LeadIntake:
    """The lead's part from its row, its inquiries (oldest first) and the platform record of the
    latest one, if an ad platform sent it. Pure."""
    latest = inquiries[-1]
    submission = latest.submission
    merged = merged_answers(i.submission for i in inquiries)
    size = next((merged[f] for f in SIZE_FIELDS if merged.get(f) not in (None, "")), None)
    return LeadIntake(
        contact=HandoffContact(
            email=lead.email or submission.get("email"),
            phone=lead.phone or submission.get("phone"),
            first_name=lead.first_name or submission.get("first_name"),
            last_name=lead.last_name or submission.get("last_name"),
            title=submission.get("title"),
        ),
        company=HandoffCompany(
            name=lead.company or submission.get("company"),
            domain=lead.company_domain or submission.get("company_domain"),
            country=lead.country or submission.get("country"),
            size=str(size) if size is not None else None,
        ),
        attribution=HandoffAttribution(
            source=lead.source,
            inquiry_source=latest.source,
            inquiry_id=latest.id,
            received_at=latest.received_at,
            inquiries=len(inquiries),
            utm=_strings(submission.get("utm")),
            ad=_ad(ad),
            landing_page=submission.get("page_url"),
            referrer=submission.get("referrer"),
        ),
        consent=_consent(submission.get("consent"), latest.received_at),
        custom=dict(submission.get("custom") or {}),
        is_test=bool(lead.is_test),
        quarantined=bool(lead.quarantined),
        erased=lead.erased_at is not None,
    )


def _ad(ad: PlatformLead | None) -> HandoffAd | None:
    if ad is None:
        return None
    ids = {k: str(v) for k, v in (ad.detail or {}).items() if k.endswith("_id") and v is not None}
    if ad.form_id:
        ids.setdefault("form_id", ad.form_id)
    return HandoffAd(platform=ad.platform, platform_lead_id=ad.platform_lead_id, ids=ids)


def _consent(given: Any, at: datetime) -> HandoffConsent | None:
    if not isinstance(given, Mapping):
        return None
    return HandoffConsent(
        text=given.get("text"),
        flags=dict(given.get("flags") or {}),
        communications=list(given.get("communications") or []),
        given_at=at,
    )


def _strings(values: Any) -> dict[str, str]:
    if not isinstance(values, Mapping):
        return {}
    return {str(k): str(v) for k, v in values.items() if v is not None}
