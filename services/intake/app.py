"""The intake HTTP app: routes over ``service``; the runtime is handed in, not built here."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import engagement_api, leads_api, platforms, quarantine
from services.intake.writer import GroupCommitWriter
from services.routing.api import router as routing_router
from services.scoring.api import router as qualification_router
from services.webhooks.api import router as webhooks_router
from shared import problems
from shared.health import health_router
from shared.limits import BodySizeLimit
from shared.runtime import Runtime

PROBLEM = {"content": {problems.PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Leadflow intake",
        version="0.1.0",
        description="Inquiries from web forms and ad platforms, stored before they are answered.",
    )
    app.state.runtime = runtime
    app.state.writer = GroupCommitWriter(
        runtime.sessions, runtime.settings, spawn=runtime.spawn, on_commit=runtime.notify_relay
    )
    problems.install(app)
    app.add_middleware(leads_api.LeadPosts)  # inside the body limit and CORS, added next
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.http.max_body_bytes)
    leads_api.install(app, runtime)  # POST/GET/DELETE /v1/leads, keys, CORS, OpenAPI extras
    app.include_router(webhooks_router)
    app.include_router(qualification_router)
    app.include_router(routing_router)
    platforms.install(app, runtime)
    engagement_api.install(app)
    quarantine.install(app)
    app.include_router(health_router())
    return app
