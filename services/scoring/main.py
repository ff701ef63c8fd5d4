"""Wiring of the scoring service: a consumer of the intake topic, and the routing of the leads it
qualifies right after each commit (services/routing/pending.py); the runtime's relay publishes."""

from __future__ import annotations

from datetime import UTC, datetime

from services.routing.pending import PendingRouter
from services.scoring import store, versions
from services.scoring.handlers import ScoringHandler
from shared.runtime import Runtime

CONSUMER = "scoring"


def start_scoring(runtime: Runtime, *, name: str = CONSUMER) -> PendingRouter:
    """Consume the intake topic in the background and route what it qualifies."""
    router = PendingRouter(runtime.sessions, runtime.settings, on_routed=runtime.notify_relay)
    runtime.spawn(router.run(), name=f"{name}-routing")

    def committed() -> None:
        runtime.notify_relay()
        router.notify()

    topics = [runtime.settings.topics.intake]
    handler = ScoringHandler(runtime.settings)
    runtime.start_consumer(
        CONSUMER,
        topics,
        handler,
        name=name,
        on_commit=committed,
        before_poll=router.caught_up.wait,
    )
    return router


async def activate_sample_rules(runtime: Runtime) -> None:
    """``leadflow dev``: the repository's sample ruleset goes live when no version is active."""
    async with runtime.sessions.begin() as session:
        text = store.DEFAULT_RULESET.read_text()
        await versions.bootstrap(session, runtime.settings, text, now=datetime.now(UTC))
