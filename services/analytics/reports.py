"""The funnel report as the API and the CLI give it: the cohort's lines counted by the store,
the maths done by funnel.py, in the HTTP body's shape."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import store
from services.analytics.funnel import GroupReport, report
from services.analytics.schemas import FunnelGroupView, FunnelView, GroupBy
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
        filters={k: str(v) if isinstance(v, UUID) else v for k, v in (filters or {}).items()},
        total=_view(report(total)) if total is not None else None,
        groups=[_view(report(counts)) for counts in groups],
    )


def _view(found: GroupReport) -> FunnelGroupView:
    group = str(found.group) if isinstance(found.group, UUID) else found.group
    return FunnelGroupView.model_validate(asdict(found) | {"group": group})
