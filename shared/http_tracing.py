"""A SERVER span for each HTTP request that may change something (any method but GET, HEAD and
OPTIONS): the lead posts, ad platforms, activities and outcomes, approvals, erasures. It continues
the request's ``traceparent`` header, and is the current span while the app answers, so the
events the request stages are created under it (``shared.tracing.parent_for``).

Installed by ``shared.web`` around an app's whole stack only while tracing is on. Its attributes
name the route's template, never the path (``/v1/leads/by-email/{email}/…`` has an email in it).
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from shared import tracing
from shared.http_metrics import UNMATCHED, AnsweredStatus, route_template

READS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTEXT_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class ServerSpans:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS or not tracing.active:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {
            CONTEXT_HEADERS[key]: value.decode("latin-1")
            for key, value in scope["headers"]
            if key in CONTEXT_HEADERS
        }
        span = tracing.server_span(
            method,
            headers,
            {
                "http.request.method": method,
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
            },
        )
        answered = AnsweredStatus(send)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, answered)
        except BaseException as error:
            span.record_exception(error)
            raise
        finally:
            otel_context.detach(token)
            route = route_template(scope.get("route"))
            if route != UNMATCHED:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            status = answered.status
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end()
