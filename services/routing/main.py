"""Wiring of routing's background work in the scoring process: a consumer of the SLA topic
(escalations reassign) and the queue sweep (queued leads are retried as reps become available:
back from leave, inside their hours, under capacity)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import select

from services.routing import store
from services.routing.assign import route_leads
from services.routing.handlers import RoutingHandler
from services.routing.models import Team
from services.routing.pending import QUALIFIED, AfterRouting, PendingRouter
from services.routing.schemas import RepIn, TeamIn
from shared.models import Lead
from shared.outages import report
from shared.runtime import Runtime

log = logging.getLogger(__name__)
CONSUMER = "routing"
SWEEP_INTERVAL_S = 30.0
SWEEP_BATCH = 200


def start_pending_router(
    runtime: Runtime, *, name: str, after: AfterRouting | None = None
) -> PendingRouter:
    """Route the leads scoring qualified, each round right after a scoring commit (``notify``)
    or a crashed replica's leftovers on its poll; ``caught_up`` holds scoring back meanwhile.
    ``after``: work in each round's transaction on the leads it placed."""
    router = PendingRouter(
        runtime.sessions, runtime.settings, on_routed=runtime.notify_relay, after=after
    )
    runtime.spawn(router.run(), name=f"{name}-routing")
    return router


def start_routing(runtime: Runtime, *, name: str = CONSUMER) -> None:
    topics = [runtime.settings.topics.sla]
    runtime.start_consumer(
        CONSUMER,
        topics,
        RoutingHandler(runtime.settings),
        name=name,
        fetch_max_wait_ms=runtime.settings.kafka.sla_fetch_max_wait_ms,
    )
    runtime.spawn(sweep_forever(runtime), name=f"{name}-queue-sweep")


async def sweep_queue(runtime: Runtime, *, now: datetime) -> int:
    """Retry up to ``SWEEP_BATCH`` queued leads; returns how many were routed."""
    async with runtime.sessions.begin() as session:
        ids = list(
            await session.scalars(
                select(Lead.id)
                .where(Lead.routing_status == "queued", Lead.stage.in_(sorted(QUALIFIED)))
                .order_by(Lead.updated_at, Lead.id)
                .limit(SWEEP_BATCH)
            )
        )
        if not ids:
            return 0
        decisions = await route_leads(
            session, ids, now=now, settings=runtime.settings, trigger="queue"
        )
    routed = sum(1 for d in decisions if d.outcome == "routed")
    if routed:
        runtime.notify_relay()
    return routed


async def sweep_forever(runtime: Runtime) -> None:
    while True:
        try:
            await sweep_queue(runtime, now=datetime.now(UTC))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the database is away: try again next round
            report(log, "routing queue sweep failed", error)
        await asyncio.sleep(SWEEP_INTERVAL_S)


SAMPLE_TEAM = "default"
SAMPLE_OWNERS = (
    ("ana@example.com", "Ana Alvarez"),
    ("bo@example.com", "Bo Berg"),
    ("chen@example.com", "Chen Li"),
)


async def add_sample_team(runtime: Runtime) -> bool:
    """``leadflow dev`` only: a team called ``default`` (where the built-in routing rules send
    qualified leads) with three owners, when the directory has no team; False if it had one."""
    now = datetime.now(UTC)
    async with runtime.sessions.begin() as session:
        if await session.scalar(select(Team.id).limit(1)) is not None:
            return False
        await store.put_team(session, TeamIn(name=SAMPLE_TEAM, strategy="round_robin"), now)
        for email, name in SAMPLE_OWNERS:
            rep = RepIn(email=email, name=name, teams=[SAMPLE_TEAM], manager_email=None)
            await store.put_rep(session, rep, now)
    return True
