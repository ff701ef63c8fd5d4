"""The public HTTP app: every service's routes on one port (composition root).

Services never mount each other: this module does, in an order that decides which route matches
first for overlapping paths (``/v1/leads/{id}/routing`` before ``/v1/leads/by-crm-id/{id}``).
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from services.analytics.api import router as analytics
from services.analytics.console import router as console
from services.intake import api as intake
from services.intake.engagement.crm import record_crm_outcome
from services.routing.api import router as routing
from services.routing.crm import follow_crm_owner
from services.routing.explain import routing_explanation
from services.scoring.api import router as qualification
from services.sla_monitor.analytics import attainment_by_source
from services.sla_monitor.api import router as sla
from services.sla_monitor.board import router as sla_board
from services.sla_monitor.sessions import current_session
from services.webhooks.api import router as webhooks
from services.webhooks.crm.inbound import router as crm_inbound
from services.webhooks.store import erase_copies as erase_webhook_copies
from shared import problems
from shared.health import health_router
from shared.openapi import document_problems
from shared.runtime import Runtime
from shared.web import new_app


def create_app(runtime: Runtime) -> FastAPI:
    app = new_app(
        "Leadflow intake",
        description="Inquiries from web forms and ad platforms, stored before they are answered.",
    )
    app.state.runtime = runtime
    # What one service adds to another's work: routing's part of a lead's explanation, the
    # webhook messages' part of erasing a lead (in intake's transaction), intake's recording of
    # the outcomes a CRM's webhooks report and routing's following of an owner set there (to
    # the webhook service's CRM inbound route).
    app.state.explain_sections = {"routing": routing_explanation}
    app.state.erasure_steps = [erase_webhook_copies]
    app.state.crm_outcomes = partial(record_crm_outcome, runtime)
    app.state.crm_owners = partial(follow_crm_owner, runtime)
    app.state.sla_by_source = attainment_by_source
    app.state.ops_session = current_session
    problems.install(app)
    intake.install_leads(app, runtime)
    app.include_router(webhooks)
    app.include_router(crm_inbound)
    app.include_router(qualification)
    app.include_router(routing)
    app.include_router(sla)
    app.include_router(sla_board)
    app.include_router(analytics)
    app.include_router(console)
    intake.install_inbound(app, runtime)
    app.include_router(health_router())
    document_problems(app)
    return app
