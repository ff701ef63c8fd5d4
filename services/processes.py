"""One process per service, as in production (docker-compose.yml, deploy/)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.main import start_analytics
from services.api import create_app as intake_app
from services.handoff.handlers import HandoffHandler
from services.handoff.main import start_handoff
from services.handoff.parts import Parts
from services.intake.analytics import inquiry_origins
from services.intake.handoff import lead_intake
from services.intake.main import start_intake
from services.routing import handlers as routing
from services.routing.handoff import lead_routing
from services.routing.main import start_pending_router, start_routing
from services.routing.pending import PendingRouter
from services.scoring.handoff import Qualifications
from services.scoring.main import start_scoring
from services.sla_monitor.analytics import attainment_by_source
from services.sla_monitor.handoff import Deadlines
from services.sla_monitor.main import start_sla_monitor
from services.webhooks.main import start_webhooks
from shared import tracing
from shared.config import Settings
from shared.events import CloudEvent
from shared.health import health_app
from shared.runtime import Runtime
from shared.serve import serve


async def run_intake(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow-intake")
    runtime = Runtime.create(settings)
    start_relay(runtime, "intake-relay")
    start_intake(runtime)
    return await serve(runtime, intake_app(runtime), port=settings.http.intake_port)


async def run_scoring(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow-scoring")
    runtime = Runtime.create(settings)
    start_relay(runtime, "scoring-relay")
    handoff = start_handoff(runtime, handoff_parts())
    start_scoring_with_routing(runtime, handoff=handoff)
    start_routing(runtime)
    app = health_app("Leadflow scoring", runtime)
    return await serve(runtime, app, port=settings.http.scoring_port)


async def run_sla_monitor(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow-sla-monitor")
    runtime = Runtime.create(settings)
    start_relay(runtime, "sla-monitor-relay")
    start_sla_monitor(runtime)
    app = health_app("Leadflow SLA monitor", runtime)
    return await serve(runtime, app, port=settings.http.sla_monitor_port)


async def run_webhooks(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow-webhooks")
    runtime = Runtime.create(settings)
    start_relay(runtime, "webhooks-relay")
    start_webhooks(runtime)
    app = health_app("Leadflow webhooks", runtime)
    return await serve(runtime, app, port=settings.http.webhooks_port)


async def run_relay(settings: Settings) -> int:
    """Only the outbox relay: it publishes every service's events (the outbox is one table), for
    services run with ``outbox.relay_in_process`` off. Replicas share the outbox's shards."""
    runtime = Runtime.create(settings)
    runtime.start_relay("relay", woken_by_commits=False)
    app = health_app("Leadflow outbox relay", runtime)
    return await serve(runtime, app, port=settings.outbox.relay_port)


def start_relay(runtime: Runtime, name: str) -> None:
    """The service's own relay, unless ``leadflow relay`` processes publish the outbox."""
    if runtime.settings.outbox.relay_in_process:
        runtime.start_relay(name)


async def run_analytics(settings: Settings) -> int:
    tracing.configure(settings.tracing, "leadflow-analytics")
    runtime = Runtime.create(settings)
    start_analytics(runtime, inquiry_origins, sla=attainment_by_source)
    app = health_app("Leadflow analytics", runtime)
    return await serve(runtime, app, port=settings.http.analytics_port)


def start_every_service(runtime: Runtime) -> None:
    """Every service's consumers and loops in one runtime, with one relay (``leadflow dev``)."""
    runtime.start_relay("relay")
    start_intake(runtime)
    handoff = start_handoff(runtime, handoff_parts())
    start_scoring_with_routing(runtime, handoff=handoff)
    start_routing(runtime)
    start_sla_monitor(runtime)
    start_webhooks(runtime)
    start_analytics(runtime, inquiry_origins, sla=attainment_by_source)


def start_scoring_with_routing(
    runtime: Runtime, *, name: str = "scoring", handoff: HandoffHandler | None = None
) -> None:
    """Scoring, with routing plugged into it: in each batch's transaction (mark the qualified
    leads pending, reassign rejected ones, release closed ones), then the routing of the pending
    leads after each commit that marked some, which holds scoring back when it falls behind;
    with ``handoff``, each routing round hands the leads it placed over in its transaction.
    (Routing's consumer of escalations and its queue sweep: ``start_routing``.)"""
    after = handoff.after_routing if handoff is not None else None
    router = start_pending_router(runtime, name=name, after=after)
    start_scoring(
        runtime,
        name=name,
        after_scoring=[RoutingAfterScoring(router)],
        before_poll=router.caught_up.wait,
    )


class RoutingAfterScoring:
    """Routing's part of a scoring batch; ``router`` is woken after a commit that marked leads
    pending. With tracing on, the batch's leads' trace contexts are handed over first: the
    pending router routes them after the commit, in a task of its own, and creates
    ``lead.routed`` under the scoring span of the lead's event."""

    def __init__(self, router: PendingRouter) -> None:
        self.router = router

    async def __call__(
        self,
        session: AsyncSession,
        events: Sequence[CloudEvent],
        moves: Sequence[dict[str, Any]],
        *,
        settings: Settings,
        now: datetime,
    ) -> object:
        if tracing.active:
            tracing.hand_over()
        return await routing.after_scoring(
            session, events, moves, settings=settings, now=now, wake=self.router.notify
        )


def handoff_parts() -> Parts:
    """What each service contributes to a lead's handoff (``lead.qualified``), in the order the
    handoff asks: intake, scoring, routing, then the SLA monitor with routing's answer."""
    return Parts(
        intake=lead_intake,
        qualification=Qualifications(),
        routing=lead_routing,
        sla=Deadlines(),
    )
