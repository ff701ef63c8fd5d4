"""The funnel report as the API and the CLI give it: the cohort's lines counted by the store,
the maths done by funnel.py, in the HTTP body's shape."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import store
from services.analytics.funnel import GroupReport, Share, Split, report
from services.analytics.schemas import (
    AttributionView,
    CreditView,
    FunnelGroupView,
    FunnelView,
    GroupBy,
)
from services.analytics.settings import AnalyticsSettings


async def funnel(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    start: date,
    end: date,
    group_by: GroupBy | None = None,
    filters: dict[str, Any] | None = None,
) -> FunnelView:
    cohort = store.Cohort(start=start, end=end, where=filters or {})
    total = next(iter(await store.counts(session, cohort, None)), None)
    groups = await store.counts(session, cohort, group_by) if group_by else []
    return FunnelView(
        start=start,
        end=end,
        time_zone=settings.time_zone,
        group_by=group_by,
        filters=_shown(filters),
        total=_view(report(total)) if total is not None else None,
        groups=[_view(report(counts)) for counts in groups],
    )


def _view(found: GroupReport) -> FunnelGroupView:
    group = str(found.group) if isinstance(found.group, UUID) else found.group
    return FunnelGroupView.model_validate(asdict(found) | {"group": group})


async def attribution(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    start: date,
    end: date,
    group_by: GroupBy = "source",
    filters: dict[str, Any] | None = None,
) -> AttributionView:
    """The bookings and opportunities dated from ``start`` to ``end`` (days of the reporting
    calendar, both included), credited to each group (the lead's original source, campaign…),
    to marketing or sales, and to expansion or net-new."""
    zone = settings.definitions.time_zone
    since = datetime.combine(start, time(), zone)
    until = datetime.combine(end + timedelta(days=1), time(), zone)
    cohort = store.Cohort(where=filters or {})
    found = await store.credits(session, cohort, group_by, start=since, end=until)
    none = Split(Share(0, 0.0), Share(0, 0.0), Share(0, 0.0))
    booked = sum((b for _, b, _ in found), none)
    opened = sum((o for _, _, o in found), none)
    return AttributionView(
        start=start,
        end=end,
        time_zone=settings.time_zone,
        group_by=group_by,
        filters=_shown(filters),
        total=_credit(None, booked, opened),
        groups=[_credit(group, b, o) for group, b, o in found],
    )


def _credit(group: Any, booked: Split, opened: Split) -> CreditView:
    return CreditView.model_validate(
        {
            "group": str(group) if isinstance(group, UUID) else group,
            "bookings": {k: asdict(v) for k, v in booked.shares().items()},
            "pipeline": {k: asdict(v) for k, v in opened.shares().items()},
        }
    )


def _shown(filters: dict[str, Any] | None) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, UUID) else v for k, v in (filters or {}).items()}
