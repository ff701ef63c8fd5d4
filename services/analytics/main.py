"""What the analytics service starts: its consumer of the intake and lifecycle topics (``leadflow
analytics``, and in ``leadflow dev``), with intake's origins of inquiries handed in by the
composition root; and, with ``LEADFLOW_ANALYTICS__REVIEW_DIR`` set, the monthly review written
there once each month is over (with the SLA monitor's attainment, also handed in)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from services.analytics import review_files
from services.analytics.goals import month_after
from services.analytics.handlers import AnalyticsHandler, Origins
from services.analytics.reports import SlaBySource, monthly_review
from services.analytics.settings import analytics_config
from shared.runtime import Runtime

CONSUMER = "analytics"
REVIEW_CHECK_S = 3600.0
log = logging.getLogger(__name__)


def start_analytics(
    runtime: Runtime,
    origins: Origins,
    *,
    sla: SlaBySource | None = None,
    name: str = CONSUMER,
) -> None:
    settings = analytics_config(runtime.settings)
    topics = [settings.topics.intake, settings.topics.lifecycle]
    runtime.start_consumer(CONSUMER, topics, AnalyticsHandler(settings, origins), name=name)
    if settings.analytics.review_dir:
        runtime.spawn(write_reviews_forever(runtime, sla), name=f"{name}-reviews")


async def write_reviews_forever(runtime: Runtime, sla: SlaBySource | None) -> None:
    """Once a month is over, its review in ``LEADFLOW_ANALYTICS__REVIEW_DIR`` (checked hourly;
    a review already there is left as it is, so replicas and restarts write it once)."""
    while True:
        try:
            await write_last_review(runtime, sla, now=datetime.now(UTC))
        except Exception:
            log.exception("analytics: writing the monthly review failed; trying again in an hour")
        await asyncio.sleep(REVIEW_CHECK_S)


async def write_last_review(
    runtime: Runtime, sla: SlaBySource | None, *, now: datetime
) -> list[Path]:
    """The review of the month before ``now`` (reporting calendar), unless it is written."""
    settings = analytics_config(runtime.settings).analytics
    today = now.astimezone(settings.definitions.time_zone).date()
    month = month_after(today.strftime("%Y-%m"), -1)
    folder = Path(settings.review_dir)
    if (folder / f"review-{month}.zip").exists():
        return []
    async with runtime.sessions() as session:
        review = await monthly_review(session, settings, month=month, today=today, sla=sla)
    written = await asyncio.to_thread(review_files.write, review, folder)
    log.info("analytics: wrote the review of %s to %s", month, folder)
    return written
