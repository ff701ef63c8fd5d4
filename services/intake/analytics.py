"""Intake's part of the funnel's dimensions: where an inquiry came from, for the analytics
consumer as it applies the inquiry's ``lead.received`` (the composition root hands it in). Reads
only; never a personal field.

- ``source``: the inquiry's source (web, google-ads, meta, or a form's own);
- ``campaign`` and ``medium``: its UTM campaign and medium, else the ad platform's campaign id;
- ``ad_platform``: google-ads or meta, when an ad platform sent it;
- ``employees``: the company size the form gave (``employees`` or ``company_size``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.handoff import SIZE_FIELDS
from services.intake.models import PlatformLead
from shared.conditions import merged_answers
from shared.db import among
from shared.models import Inquiry


async def inquiry_origins(
    session: AsyncSession, inquiry_ids: Sequence[UUID], /
) -> dict[UUID, dict[str, Any]]:
    """Each stored inquiry's origin (an id not stored is left out)."""
    ids = sorted(set(inquiry_ids))
    query = select(Inquiry.id, Inquiry.source, Inquiry.submission).where(
        among(session, Inquiry.id, ids)
    )
    inquiries = (await session.execute(query)).all()
    platforms = select(PlatformLead.inquiry_id, PlatformLead.platform, PlatformLead.detail)
    ads = {
        row.inquiry_id: row
        for row in await session.execute(
            platforms.where(among(session, PlatformLead.inquiry_id, ids))
        )
    }
    return {row.id: origin(row.source, row.submission or {}, ads.get(row.id)) for row in inquiries}


def origin(source: str, submission: Mapping[str, Any], ad: Any | None) -> dict[str, Any]:
    """An inquiry's origin from its source, its submission and its ad platform record. Pure."""
    given = submission.get("utm")
    utm: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    answers = merged_answers([submission])
    size = next((answers[f] for f in SIZE_FIELDS if answers.get(f) not in (None, "")), None)
    campaign = utm.get("campaign")
    if campaign in (None, "") and ad is not None:
        campaign = (ad.detail or {}).get("campaign_id")
    return {
        "source": source,
        "campaign": _text(campaign),
        "medium": _text(utm.get("medium")),
        "ad_platform": ad.platform if ad is not None else None,
        "employees": size if isinstance(size, int | float | str) else None,
    }


def _text(value: Any) -> str | None:
    return str(value)[:200] if value not in (None, "") else None
