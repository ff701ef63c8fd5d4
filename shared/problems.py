"""RFC 9457 problem details for every HTTP error, naming the offending field."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.outages import describe, unavailable

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 2


PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a router whose routes can answer these problems."""
    return dict.fromkeys(statuses, PROBLEM)


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; ``field`` names the offending field as the client sent it."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, Any] | str] | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers, self.extra = headers, extra


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(location[0] if location else "body")


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field(tuple(item["loc"])),
                "detail": item["msg"].removeprefix("Value error, "),
                "in": str(item["loc"][0]),
            }
            for item in error.errors()
        ]
        if _other_media(request) and any(item["loc"] == ("body",) for item in error.errors()):
            return problem_response(
                415,
                "Unsupported Media Type",
                "send application/json",
                instance=request.url.path,
                field="Content-Type",
            )
        first = errors[0] if errors else {"field": "body", "detail": "invalid"}
        return problem_response(
            422,
            "Invalid request",
            f"{first['field']}: {first['detail']}",
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 405 and (allowed := _allowed(request)):
            headers["Allow"] = ", ".join(allowed)
        return problem_response(
            error.status_code,
            _title(error.status_code),
            str(error.detail),
            instance=request.url.path,
            headers=headers,
        )

    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(
            error.status,
            error.title,
            error.detail,
            instance=request.url.path,
            headers=error.headers,
            **error.extra,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        if unavailable(error):
            raise error  # answered by OutageAnswers, around the whole app
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal Server Error", instance=request.url.path)

    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: OutageAnswers(build())  # type: ignore[method-assign]


def _other_media(request: Request) -> bool:
    """The request names a media type, and not JSON: a JSON body route answers it 415."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return bool(media) and media != "application/json" and not media.endswith("+json")


def _allowed(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names the methods of the
    first route that matched the path only, though each method is a route of its own here."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):  # opens the included routers
        if route.methods and route.path and compile_path(route.path)[0].match(request.url.path):
            methods |= route.methods
    return sorted(methods)


def unavailable_response(path: str) -> JSONResponse:
    return problem_response(
        503,
        "Service Unavailable",
        "the database is unavailable; nothing was stored, retry shortly",
        instance=path,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class OutageAnswers:
    """A database outage (``shared.outages``), raised by a route or by a middleware that reads
    the database (CORS origins, keys), answered 503 with ``Retry-After``, logged as one warning
    line. It wraps Starlette's outermost middleware, which would answer too, but then re-raise the
    error to the server, which logs it as "Exception in ASGI application" with a traceback: a
    thousand tracebacks in an outage of a few seconds, for a condition that is handled."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:
            if not unavailable(error):
                raise
            log.warning(
                "%s %s: 503, database unavailable (%s)",
                scope["method"],
                scope["path"],
                describe(error),
            )
            if not started:
                await unavailable_response(scope["path"])(scope, receive, send)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
