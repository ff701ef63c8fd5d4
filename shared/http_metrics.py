"""``leadflow_http_request_duration_seconds`` for every answer of a Leadflow app: the outermost
layer of its middleware stack (``shared.web``), so it times what the server waits for, the
answers of the other middleware (the body limit's 413, intake's ``LeadPosts`` hot path) and the
500 of an unexpected error included.

The route label is the template of the route that took the request (``/v1/leads/{lead_id}``),
which the router leaves in ``scope["route"]`` (``LeadPosts``, which answers ahead of the router,
sets it too), never the raw path: ids would make a series per lead. A request no route took is
``unmatched``. Methods outside the standard ones are ``other``, statuses are classes (``2xx``).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import HTTP_REQUEST_SECONDS

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``2xx`` for 204; a status outside 100–599 (never sent by Starlette) counts as ``5xx``."""
    index = status // 100 - 1
    return STATUS_CLASSES[index] if 0 <= index < len(STATUS_CLASSES) else "5xx"


def route_template(route: object) -> str:
    """The path template of the route a request was routed to (None: no route took it)."""
    if route is None:
        return UNMATCHED
    template = getattr(route, "path_format", None)
    return template if isinstance(template, str) else UNMATCHED


class AnsweredStatus:
    """``send``, noting the status of the answer it starts: 500 until one is sent, as the server
    answers a request its app left unanswered."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class RequestMetrics:
    """Observes each HTTP request's duration once its answer is sent (or its app has failed:
    then it is a ``5xx``, as the server answers 500 to a request left unanswered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # One labelled child per (method, route, status): ``labels()`` checks and locks on
        # every call, a dict lookup does not.
        self._children: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        answered = AnsweredStatus(send)
        try:
            await self.app(scope, receive, answered)
        finally:
            self._observe(scope, answered.status, perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        key = (
            method if method in METHODS else "other",
            route_template(scope.get("route")),
            status_class(status),
        )
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HTTP_REQUEST_SECONDS.labels(*key)
        child.observe(seconds)
