"""The ops board (``/ops``): server-rendered pages of the SLA clocks, updated live.

- ``GET/POST /ops/sign-in``, ``POST /ops/sign-out``: a principal's key in, a signed HttpOnly
  session cookie out (``sessions.py``);
- ``GET /ops/sla``: open clocks by time left, the last 24 hours' breaches and escalations, and
  first-response attainment by team;
- ``GET /ops/sla/stream``: server-sent events of the clocks that change (``live.py``);
- ``POST /ops/sla/clocks/{id}/acknowledge``: for the page's script, with the session's CSRF
  token, from our own origin only;
- ``GET /ops/static/{name}``: the page's script and style sheet (no inline script: the pages'
  Content-Security-Policy is ``default-src 'self'``).

The JSON API's own functions do the work (``api.acknowledge_clock``, ``api.attainment_by``), so
the board and ``/v1/sla/…`` cannot disagree. These routes are pages, not API: they are left out
of the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from services.sla_monitor import store
from services.sla_monitor.api import ACKNOWLEDGERS, acknowledge_clock, attainment_by, view
from services.sla_monitor.board_view import BLANK, bars, row_of, shown_time
from services.sla_monitor.live import LiveFeed, last_event_start
from services.sla_monitor.models import SlaClock
from services.sla_monitor.schemas import AcknowledgeIn, ClockView
from services.sla_monitor.sessions import (
    CSRF_HEADER,
    Session,
    SessionsUnavailable,
    clear_cookie,
    current_session,
    issue,
    same_origin,
    set_cookie,
    signing_key,
)
from services.sla_monitor.settings import sla_config
from shared import problems
from shared.auth import Caller, SecretLookup, identify, still_holds_key
from shared.deps import RuntimeDep
from shared.pages import PAGE_HEADERS
from shared.problems import Problem

BOARD_LIMIT = 200
RECENT = timedelta(hours=24)
STATIC = {
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SessionDep = Annotated[Session | None, Depends(current_session)]

router = APIRouter(prefix="/ops", tags=["ops board"], include_in_schema=False)
templates = Environment(
    loader=PackageLoader("services.sla_monitor", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)


@router.get("/sign-in")
async def sign_in_form(session: SessionDep) -> Response:
    if session is not None:
        return RedirectResponse("/ops/sla", 303)
    return page("sign_in.html", error=None)


@router.post("/sign-in")
async def sign_in(
    request: Request, runtime: RuntimeDep, key: Annotated[str, Form(max_length=1000)] = ""
) -> Response:
    """A key in, a session cookie out (never the key); a wrong key gets the form again, 401."""
    if not same_origin(request, required=False):
        return page("sign_in.html", status=403, error="Sign in from Leadflow's own page.")
    caller = await _caller_of(request, key) if key.strip() else None
    if caller is None:
        return page("sign_in.html", status=401, error="That key is not valid.")
    settings = sla_config(runtime.settings)
    try:
        secret = signing_key(settings)
    except SessionsUnavailable as error:
        return page("sign_in.html", status=503, error=str(error))
    hours = settings.sla.session_hours
    token = issue(caller, key=secret, now=datetime.now(UTC), hours=hours)
    response = RedirectResponse("/ops/sla", 303)
    set_cookie(response, token, request=request, hours=hours)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if not same_origin(request, required=False):
        raise Problem(403, "Forbidden", "cross-origin request refused", field="Origin")
    response = RedirectResponse("/ops/sign-in", 303)
    clear_cookie(response, request=request)
    return response


@router.get("/sla")
async def board(
    runtime: RuntimeDep, session: SessionDep, team: str | None = None, owner: str | None = None
) -> Response:
    """The board; without a session, the sign-in page."""
    if session is None:
        return RedirectResponse("/ops/sign-in", 303)
    filters = _filters(team, owner)
    now = datetime.now(UTC)
    async with runtime.sessions() as db:
        opened = await store.open_by_deadline(db, filters=filters, limit=BOARD_LIMIT)
        recent = await store.breached_between(
            db, now - RECENT, now + timedelta(minutes=1), limit=BOARD_LIMIT
        )
    # The same numbers as GET /v1/sla/attainment (the last 30 days, by team).
    lines = await attainment_by(runtime, by="team", kind="first_response", since=None, until=None)
    return page(
        "board.html",
        caller=session.caller.name,
        csrf=session.csrf,
        can_ack=bool(session.caller.roles & ACKNOWLEDGERS),
        open_rows=[row_of(view(r, now)) for r in opened],
        breach_rows=[row_of(view(r, now)) for r in recent if _matches(r, filters)],
        blank=BLANK,
        bars=bars(lines),
        team=team or "",
        owner=owner or "",
        stream="/ops/sla/stream" + _query(filters),
        shown_at=shown_time(now),
    )


@router.get("/sla/stream")
async def stream(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    team: str | None = None,
    owner: str | None = None,
) -> StreamingResponse:
    """Server-sent events: each clock that changes, as it changes (polled about once a second)."""
    if session is None:
        raise Problem(401, "Unauthorized", "sign in at /ops/sign-in first")
    feed = LiveFeed(runtime, filters=_filters(team, owner), until=session.expires)
    start = last_event_start(request.headers.get("last-event-id"), datetime.now(UTC))
    return StreamingResponse(
        feed.events(
            request.is_disconnected,
            start=start,
            signed_in=partial(still_holds_key, request, session.caller),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.post(
    "/sla/clocks/{clock_id:uuid}/acknowledge",
    response_model=ClockView,
    responses=problems.documented(409),
)
async def acknowledge_from_board(
    clock_id: UUID,
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    body: AcknowledgeIn | None = None,
) -> ClockView:
    """The page's Acknowledge button: the session's CSRF token and our own origin required."""
    if session is None:
        raise Problem(401, "Unauthorized", "sign in at /ops/sign-in first")
    if not same_origin(request, required=True):
        raise Problem(403, "Forbidden", "cross-origin request refused", field="Origin")
    if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise Problem(403, "Forbidden", "missing or wrong CSRF token", field=CSRF_HEADER)
    return await acknowledge_clock(clock_id, body or AcknowledgeIn(), runtime, session.caller)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise Problem(404, "Not Found", f"no file {name}", field="name")
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return Response(_asset(name), media_type=STATIC[name], headers=headers)


def page(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(asset=_asset_url, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


async def _caller_of(request: Request, key: str) -> Caller | None:
    """Who the key belongs to, as ``shared.auth.authenticate`` finds it: a configured key or
    principal, else a secret key kept in the database (``app.state.secret_lookup``)."""
    caller = identify(request.app.state.runtime.settings.auth, key)
    lookup: SecretLookup | None = getattr(request.app.state, "secret_lookup", None)
    if caller is None and lookup is not None:
        caller = await lookup(key.strip())
    return caller


def _filters(team: str | None, owner: str | None) -> dict[str, Any]:
    return {"team": team or None, "owner_email": owner or None}


def _matches(row: SlaClock, filters: dict[str, Any]) -> bool:
    return all(value is None or getattr(row, k) == value for k, value in filters.items())


def _query(filters: dict[str, Any]) -> str:
    names = {"team": "team", "owner_email": "owner"}
    present = {names[k]: v for k, v in filters.items() if v is not None}
    return "?" + urlencode(present) if present else ""


@cache
def _asset(name: str) -> bytes:
    return (files("services.sla_monitor") / "static" / name).read_bytes()


def _asset_url(name: str) -> str:
    """The file's URL, changed by every change of its content (so it may be cached a day)."""
    return f"/ops/static/{name}?v={hashlib.sha256(_asset(name)).hexdigest()[:12]}"
