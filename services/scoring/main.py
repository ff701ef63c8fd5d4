"""Wiring of the scoring service: a consumer of the intake topic, with the hooks the composition
root plugs in (routing: services/processes.py); the runtime's relay publishes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from services.scoring import store, versions
from services.scoring.handlers import AfterScoring, ScoringHandler
from shared.runtime import Runtime

CONSUMER = "scoring"


def start_scoring(
    runtime: Runtime,
    *,
    name: str = CONSUMER,
    after_scoring: Sequence[AfterScoring] = (),
    on_commit: Sequence[Callable[[], None]] = (),
    before_poll: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Consume the intake topic in the background. What other services add (routing) comes in
    as hooks: ``after_scoring`` in each batch's transaction, ``on_commit`` after it commits,
    ``before_poll`` awaited before each poll (to hold scoring back while they catch up)."""

    def committed() -> None:
        runtime.notify_relay()
        for call in on_commit:
            call()

    topics = [runtime.settings.topics.intake]
    handler = ScoringHandler(runtime.settings, after_scoring=after_scoring)
    runtime.start_consumer(
        CONSUMER,
        topics,
        handler,
        name=name,
        on_commit=committed,
        before_poll=before_poll,
    )


async def activate_sample_rules(runtime: Runtime) -> None:
    """``leadflow dev``: the repository's sample ruleset goes live when no version is active."""
    async with runtime.sessions.begin() as session:
        text = store.DEFAULT_RULESET.read_text()
        await versions.bootstrap(session, runtime.settings, text, now=datetime.now(UTC))
