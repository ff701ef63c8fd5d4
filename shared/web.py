"""How every Leadflow HTTP app is made (the public app, each service's health app): FastAPI's
CDN docs pages off, ours on (``shared/docs.py``), the security headers' defaults on every
answer (``shared/pages.py``), every request timed (``shared/http_metrics.py``) and, with tracing
on, every request that may change something traced (``shared/http_tracing.py``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from shared import tracing
from shared.docs import install_docs
from shared.http_metrics import RequestMetrics
from shared.http_tracing import ServerSpans
from shared.pages import SecurityHeaders

NO_FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class LeadflowApp(FastAPI):
    """FastAPI, with ``SecurityHeaders`` and ``RequestMetrics`` (and ``ServerSpans`` around
    them, with tracing on) around its whole middleware stack, as it is built at the first
    request: outside the error middleware (an unexpected error's 500 is seen), every middleware
    added later (intake's ``LeadPosts`` answers lead posts ahead of the router) and what wraps
    the stack itself (``shared.problems``' 503 of a database outage). ``add_middleware`` could
    only put them inside whatever is added after them."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None:
            # Security headers on every answer, those of middleware and of intake's lead posts
            # answered ahead of the router included.
            stack = RequestMetrics(SecurityHeaders(self.build_middleware_stack()))
            # Only while tracing is on (off, not even a check per request).
            self.middleware_stack = ServerSpans(stack) if tracing.active else stack
        await super().__call__(scope, receive, send)


def new_app(title: str, *, description: str = "") -> FastAPI:
    app = LeadflowApp(
        title=title,
        version="0.1.0",
        description=description,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 here: API keys and bearer keys
        # FastAPI's own OpenTelemetry spans, metrics and logs start whenever a global provider
        # is set (by an auto-instrumentation wrapper, say): a second SERVER span per request
        # beside ours, and a check of three globals per request while none is.
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    install_docs(app)
    return app
