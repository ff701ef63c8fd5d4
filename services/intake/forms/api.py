"""``/v1/leads``: post an inquiry (JSON, a web form or HubSpot's shape), read a lead, erase one.

A plain HTML form needs no JavaScript: a form post is answered with a 303 to the key's thank-you
page (or ``LEADFLOW_INTAKE__THANK_YOU_URL``) unless the client asks for JSON
(``Accept: application/json``). Browsers on other origins get CORS headers when the origin is one
of a public key's allowed origins (or ``LEADFLOW_INTAKE__CORS_ORIGINS``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import partial
from typing import Annotated
from uuid import UUID

import orjson
from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake.forms import docs
from services.intake.forms.parsing import Parsed
from services.intake.forms.store import find_lead
from services.intake.forms.submissions import fingerprint, read_body, unknown_fields, validate
from services.intake.keys.guard import Guard, Poster
from services.intake.keys.store import KeyRing, key_still_active, stored_secret_caller
from services.intake.privacy.erasure import erase_lead
from services.intake.schemas import LeadAccepted, LeadErasure, LeadPosted, LeadView
from services.intake.settings import intake_config
from services.intake.store import Arrival, Idempotency, Replayed
from services.intake.writer import GroupCommitWriter
from shared.db import snapshot
from shared.problems import Problem, problem_response
from shared.runtime import Runtime

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")

REPLAYED = "Idempotent-Replayed"
ALLOW_HEADERS = "Content-Type, Accept, X-API-Key, Idempotency-Key"
EXPOSE_HEADERS = f"Location, Retry-After, {REPLAYED}"

router = APIRouter(prefix="/v1", tags=["leads"])


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _guard(request: Request) -> Guard:
    return request.app.state.guard


@router.post(
    "/leads",
    status_code=202,
    response_model=LeadPosted,
    summary="Submit an inquiry (JSON, web form or HubSpot shape)",
    description=docs.POST_DESCRIPTION,
    openapi_extra={**docs.REQUEST_BODY, "parameters": docs.POST_PARAMETERS},
    responses=docs.POST_RESPONSES,
)
async def post_lead(request: Request) -> Response:
    # The headers and the query key are read by hand (and documented in POST_PARAMETERS):
    # declared as parameters, FastAPI's per-request resolution cost more than the rest of the
    # handler on this hot path.
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise Problem(
            422,
            "Invalid request",
            "Idempotency-Key: 1 to 200 visible ASCII characters",
            field="Idempotency-Key",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "detail": "1 to 200 visible ASCII characters",
                    "in": "header",
                }
            ],
        )
    settings = intake_config(_runtime(request).settings)
    parsed = await read_body(request, settings)
    poster = await _guard(request).poster(request, parsed.key)
    if parsed.format == "json" and parsed.kept_as_custom and poster.key and poster.key.strict:
        raise unknown_fields(parsed.kept_as_custom)
    submission = validate(parsed, settings)
    claim = None
    if idempotency_key:
        claim = Idempotency(f"{poster.scope}:{idempotency_key}", fingerprint(submission))
    arrival = Arrival(
        submission,
        datetime.now(UTC),
        raw=parsed.raw,
        idempotency=claim,
        quarantine="honeypot" if parsed.honeypot else None,
    )
    writer: GroupCommitWriter = request.app.state.writer
    answer = await writer.submit(arrival)
    return _answer(request, answer, parsed, poster)


def _answer(request: Request, answer: LeadAccepted, parsed: Parsed, poster: Poster) -> Response:
    headers = {"Location": f"/v1/leads/{answer.lead_id}"}
    if isinstance(answer, Replayed):
        headers[REPLAYED] = "true"
    thank_you = (poster.key and poster.key.thank_you_url) or (
        intake_config(_runtime(request).settings).intake.thank_you_url
    )
    if parsed.format == "form" and thank_you and not _wants_json(request):
        replayed = {REPLAYED: "true"} if REPLAYED in headers else None
        return RedirectResponse(thank_you, status_code=303, headers=replayed)
    body = {
        "lead_id": str(answer.lead_id),
        "inquiry_id": str(answer.inquiry_id),
        "new_lead": answer.new_lead,
        "status": answer.status,
        "kept_as_custom": parsed.kept_as_custom,
    }
    return Response(orjson.dumps(body), 202, headers, media_type="application/json")


POST_ROUTE = next(r for r in router.routes if getattr(r, "endpoint", None) is post_lead)
"""``post_lead``'s route, which ``LeadPosts`` puts in the scope of the requests it serves."""


class LeadPosts:
    """Serves ``POST /v1/leads`` (``post_lead``) ahead of FastAPI's router.

    It is intake's hot path, and FastAPI's route matching, dependency resolution and exception
    middleware cost more CPU per request than the handler itself (py-spy, docs/benchmarks.md).
    The route stays declared on the router, where it documents the endpoint in OpenAPI; answers,
    problems included, are the same either way. Installed inside ``BodySizeLimit`` and
    ``CorsHeaders``, so the 413 and the CORS headers apply as before; an unexpected error goes on
    to the app's 500 handler.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/leads" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = POST_ROUTE  # as the router would: the request metrics' route label
        try:
            response = await post_lead(Request(scope, receive))
        except Problem as error:
            response = problem_response(
                error.status,
                error.title,
                error.detail,
                instance=scope["path"],
                headers=error.headers,
                **error.extra,
            )
        await response(scope, receive, send)


@router.options(
    "/leads",
    status_code=204,
    summary="CORS preflight for browser forms",
    description="Answered for origins a public key allows (or `LEADFLOW_INTAKE__CORS_ORIGINS`).",
    responses={204: {"description": "The origin may post"}, 403: docs.problem(403)},
)
async def preflight(
    request: Request, origin: Annotated[str | None, Header(alias="Origin")] = None
) -> Response:
    if not origin or not await allowed_origin(request, origin):
        raise Problem(403, "Forbidden", f"origin {origin} may not post here", field="Origin")
    return Response(
        status_code=204,
        headers=_cors(origin)
        | {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
        },
    )


@router.get(
    "/leads/{lead_id:uuid}",
    response_model=LeadView,
    summary="A lead with its score and history",
    responses=docs.responses(401, 403, 404, 422),
)
async def get_lead(lead_id: UUID, request: Request) -> LeadView:
    await _guard(request).require_secret(request)
    async with snapshot(_runtime(request).sessions) as session:
        lead = await find_lead(session, lead_id)
    if lead is None:
        raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id")
    return lead


@router.delete(
    "/leads/{lead_id:uuid}",
    response_model=LeadErasure,
    summary="Erase a lead's personal data",
    description=docs.ERASE_DESCRIPTION,
    responses=docs.responses(401, 403, 404, 422),
)
async def delete_lead(lead_id: UUID, request: Request) -> LeadErasure:
    await _guard(request).require_secret(request)
    runtime = _runtime(request)
    async with runtime.sessions.begin() as session:
        erased_at = await erase_lead(
            session,
            lead_id,
            settings=intake_config(runtime.settings),
            now=datetime.now(UTC),
            steps=getattr(request.app.state, "erasure_steps", ()),
        )
    if erased_at is None:
        raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id")
    runtime.notify_relay()
    return LeadErasure(lead_id=lead_id, erased_at=erased_at)


async def allowed_origin(request: Request, origin: str) -> bool:
    origin = origin.rstrip("/").lower()
    settings = intake_config(_runtime(request).settings)
    if origin in {o.rstrip("/").lower() for o in settings.intake.cors_origins}:
        return True
    keys: KeyRing = request.app.state.keys
    return origin in await keys.origins()


def _cors(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
        "Vary": "Origin",
    }


class CorsHeaders:
    """CORS headers on every answer to a browser post (problems too, so a page can read them)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin")
        if (
            scope["type"] != "http"
            or scope["path"] != "/v1/leads"
            or scope["method"] == "OPTIONS"
            or not origin
            or not await allowed_origin(Request(scope), origin)
        ):
            await self.app(scope, receive, send)
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in _cors(origin).items()]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def install(app: FastAPI, runtime: Runtime) -> None:
    """The routes, the key ring and guard they use, CORS, and the OpenAPI extras."""
    app.state.keys = KeyRing(
        runtime.sessions, ttl=intake_config(runtime.settings).intake.key_cache_s
    )
    app.state.guard = Guard(intake_config(runtime.settings), app.state.keys)
    app.state.secret_lookup = partial(stored_secret_caller, app.state.keys)
    app.state.key_still_active = partial(key_still_active, runtime.sessions)
    app.include_router(router)
    app.add_middleware(CorsHeaders)
    docs.extend_openapi(app)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept or "application/problem+json" in accept
