"""Wiring of the scoring service: a consumer of the intake topic with its own relay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.scoring import store, versions
from services.scoring.handlers import ScoringHandler
from shared.consumer import EventConsumer
from shared.runtime import Runtime

CONSUMER = "scoring"


def start_scoring(runtime: Runtime, *, name: str = CONSUMER) -> None:
    """Consume the intake topic in the background; the runtime's relay publishes what it emits."""

    assigned = runtime.consumers[name] = asyncio.Event()

    async def consume() -> None:
        consumer = EventConsumer(
            name=CONSUMER,
            topics=[runtime.settings.topics.intake],
            handler=ScoringHandler(runtime.settings),
            sessions=runtime.sessions,
            producer=await runtime.connected_producer(),
            settings=runtime.settings,
            on_commit=runtime.notify_relay,
            assigned=assigned,
        )
        await consumer.run()

    runtime.spawn(consume(), name=name)


async def activate_sample_rules(runtime: Runtime) -> None:
    """``leadflow dev``: the repository's sample ruleset goes live when no version is active."""
    async with runtime.sessions.begin() as session:
        text = store.DEFAULT_RULESET.read_text()
        await versions.bootstrap(session, runtime.settings, text, now=datetime.now(UTC))
