"""Wiring of the scoring service: a consumer of the intake topic with its own relay."""

from __future__ import annotations

from datetime import UTC, datetime

from services.scoring import store, versions
from services.scoring.handlers import ScoringHandler
from shared.runtime import Runtime

CONSUMER = "scoring"


def start_scoring(runtime: Runtime, *, name: str = CONSUMER) -> None:
    """Consume the intake topic in the background; the runtime's relay publishes what it emits."""
    topics = [runtime.settings.topics.intake]
    runtime.start_consumer(CONSUMER, topics, ScoringHandler(runtime.settings), name=name)


async def activate_sample_rules(runtime: Runtime) -> None:
    """``leadflow dev``: the repository's sample ruleset goes live when no version is active."""
    async with runtime.sessions.begin() as session:
        text = store.DEFAULT_RULESET.read_text()
        await versions.bootstrap(session, runtime.settings, text, now=datetime.now(UTC))
