"""What the analytics service starts: its consumer of the intake and lifecycle topics (``leadflow
analytics``, and in ``leadflow dev``), with intake's origins of inquiries handed in by the
composition root."""

from __future__ import annotations

from services.analytics.handlers import AnalyticsHandler, Origins
from services.analytics.settings import analytics_config
from shared.runtime import Runtime

CONSUMER = "analytics"


def start_analytics(runtime: Runtime, origins: Origins, *, name: str = CONSUMER) -> None:
    settings = analytics_config(runtime.settings)
    topics = [settings.topics.intake, settings.topics.lifecycle]
    runtime.start_consumer(CONSUMER, topics, AnalyticsHandler(settings, origins), name=name)
