"""Intake's part of the public HTTP app (services/api.py mounts it): the lead posts with their
group-commit writer, middleware and CORS; then the ad platforms, engagement and CRM outcomes,
and the quarantine. The runtime is handed in, not built here."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake.engagement import api as engagement_api
from services.intake.forms import api as leads_api
from services.intake.platforms import api as platforms
from services.intake.privacy import quarantine
from services.intake.settings import intake_config
from services.intake.writer import GroupCommitWriter
from shared.limits import BodySizeLimit
from shared.runtime import Runtime


def install_leads(app: FastAPI, runtime: Runtime) -> None:
    """``/v1/leads`` (post, read, erase), its keys, CORS and OpenAPI extras: mounted first, as
    its middleware wraps the whole app."""
    app.state.writer = GroupCommitWriter(
        runtime.sessions,
        intake_config(runtime.settings),
        spawn=runtime.spawn,
        on_commit=runtime.notify_relay,
    )
    app.add_middleware(leads_api.LeadPosts)  # inside the body limit and CORS, added next
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.http.max_body_bytes)
    leads_api.install(app, runtime)


def install_inbound(app: FastAPI, runtime: Runtime) -> None:
    """Ad platforms (Google Ads, Meta), engagement and CRM outcomes, the quarantine."""
    platforms.install(app, runtime)
    engagement_api.install(app)
    quarantine.install(app)
