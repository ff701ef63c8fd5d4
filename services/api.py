"""The public HTTP app: every service's routes on one port (composition root).

Services never mount each other: this module does, in an order that decides which route matches
first for overlapping paths (``/v1/leads/{id}/routing`` before ``/v1/leads/by-crm-id/{id}``).
"""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import api as intake
from services.routing.api import router as routing
from services.routing.explain import routing_explanation
from services.scoring.api import router as qualification
from services.sla_monitor.api import router as sla
from services.sla_monitor.board import router as sla_board
from services.webhooks.api import router as webhooks
from services.webhooks.store import erase_copies as erase_webhook_copies
from shared import problems
from shared.health import health_router
from shared.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Leadflow intake",
        version="0.1.0",
        description="Inquiries from web forms and ad platforms, stored before they are answered.",
    )
    app.state.runtime = runtime
    # What one service adds to another's work: routing's part of a lead's explanation, the
    # webhook messages' part of erasing a lead (in intake's transaction).
    app.state.explain_sections = {"routing": routing_explanation}
    app.state.erasure_steps = [erase_webhook_copies]
    problems.install(app)
    intake.install_leads(app, runtime)
    app.include_router(webhooks)
    app.include_router(qualification)
    app.include_router(routing)
    app.include_router(sla)
    app.include_router(sla_board)
    intake.install_inbound(app, runtime)
    app.include_router(health_router())
    return app
