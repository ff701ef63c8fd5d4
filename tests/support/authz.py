"""The authorization matrix's machinery (the table: tests/composition/integration/
test_authorization_matrix.py): the credentials each column stands for, one request per route
and column, what a table's symbol accepts, and the routes an app serves.

A column is a credential, applied the way its route takes credentials:
- the JSON API and the ad-platform and CRM webhooks get the key's headers (``Authorization:
  Bearer``, or ``X-API-Key`` with the browser's ``Origin``) and no signature of their own;
- the ops pages (``/ops/…``) get the session cookie that signing in with the key gave
  (``POST /ops/sign-in``), none when it was refused; ``POST /ops/sign-in`` gets the key as its
  form field.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import create_app
from services.intake.keys.store import create_key, revoke_key
from services.sla_monitor.sessions import COOKIE, CSRF_HEADER, signing_key, verify
from services.sla_monitor.settings import sla_config
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.crm_servers import sign_hubspot_v3

BASE = "http://leadflow"
OWN_ORIGIN = BASE
FORM_ORIGIN = "https://forms.example.com"
OTHER_ORIGIN = "https://elsewhere.example"
OLD_ORIGIN = "https://old.example.com"
SECRET = "sk_test"  # make_settings' LEADFLOW_AUTH__SECRET_KEYS
GOOGLE_KEY = "google-key-for-the-matrix"
META_SECRET = "meta-app-secret"
META_TOKEN = "meta-verify-token"
HUBSPOT_SECRET = "hubspot-app-secret"
PRINCIPALS = {
    "mkt": ["approver:marketing"],
    "sales": ["approver:sales"],
    "ops": ["ops"],
    "mgr": ["manager"],
    "none": [],
}
"""The principals and their roles; each column is named after its principal."""
COLUMNS = ("anon", "pk", "pk@x", "pk-rv", "pk-b", "sk", "sk-db", "sk-rv", "sk-rl", *PRINCIPALS)

SIGN_IN = "/ops/sign-in"
PAGE_PREFIX = "/ops/"
SAMPLE_PATH_VALUES = {
    "version": "1",
    "month": "2025-01",
    "email": "ada@example.com",
    "crm_id": "crm-1",
    "name": "board.css",
}


@dataclass(frozen=True, slots=True)
class Credential:
    """What a column sends: a key in a header (``bearer`` or ``api_key`` with ``origin``)."""

    bearer: str | None = None
    api_key: str | None = None
    origin: str | None = None

    @property
    def key(self) -> str:
        """The key itself (what the ops sign-in form is given)."""
        return self.bearer or self.api_key or ""

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        if self.origin:
            headers["Origin"] = self.origin
        return headers


@dataclass
class World:
    """One app over one database, with every column's credential and session."""

    app: FastAPI
    runtime: Runtime
    client: httpx.AsyncClient
    credentials: dict[str, Credential]
    hubspot_subscription: str
    sessions: dict[str, str] = field(default_factory=dict)
    """Ops session cookie by column, for the columns whose key signs in."""

    async def send(self, method: str, path: str, column: str) -> httpx.Response:
        """The route's request with the column's credential (no signature of the route's own)."""
        request = _minimal(method, path, self)
        credential = self.credentials[column]
        if path == SIGN_IN and method == "POST":
            request["data"] = {"key": credential.key}
        elif path.startswith(PAGE_PREFIX):
            request["headers"].update(self._page_headers(column))
        else:
            request["headers"].update(credential.headers())
        return await self._send(method, path, request)

    async def send_signed(self, method: str, path: str, *, valid: bool) -> httpx.Response:
        """The route's request signed as its sender signs it (a wrong secret when not ``valid``)."""
        request = _minimal(method, path, self)
        _sign(request, method, BASE + _concrete(path, self), valid=valid)
        return await self._send(method, path, request)

    async def _send(self, method: str, path: str, request: dict[str, Any]) -> httpx.Response:
        self.client.cookies.clear()  # a cell's answer must not lend its cookie to the next cell
        return await self.client.request(method, _concrete(path, self), **request)

    def _page_headers(self, column: str) -> dict[str, str]:
        token = self.sessions.get(column)
        if token is None:
            return {}
        session = verify(
            token, key=signing_key(sla_config(self.runtime.settings)), now=datetime.now(UTC)
        )
        assert session is not None
        return {"Cookie": f"{COOKIE}={token}", "Origin": OWN_ORIGIN, CSRF_HEADER: session.csrf}


def passes(symbol: str, response: httpx.Response) -> bool:
    """Whether ``response`` is what the table's ``symbol`` says (see the test's legend)."""
    status = response.status_code
    to_sign_in = status == 303 and response.headers.get("location", "").endswith(SIGN_IN)
    if symbol == "ok":
        return status not in (401, 403) and not to_sign_in and status != 500
    if symbol == "in":
        return to_sign_in
    if symbol == "bad":
        return status in (400, 422)
    return status == int(symbol)


def parse_table(text: str) -> tuple[list[str], dict[tuple[str, str], dict[str, str]]]:
    """A text table: a header line (``route`` then the columns), then ``METHOD /path`` and one
    symbol per column per line; ``#`` starts a comment line."""
    lines = [line.split() for line in text.strip().splitlines() if not line.startswith("#")]
    header, *rows = [line for line in lines if line]
    columns = header[1:]
    table: dict[tuple[str, str], dict[str, str]] = {}
    for method, path, *cells in rows:
        assert len(cells) == len(columns), f"{method} {path}: {len(cells)} cells"
        assert (method, path) not in table, f"{method} {path} twice"
        table[(method, path)] = dict(zip(columns, cells, strict=True))
    return columns, table


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every method and path the app answers, paths as OpenAPI writes them (no converters);
    ``HEAD`` is left out where Starlette adds it to a ``GET``."""
    routes = set()
    for route in iter_route_contexts(app.routes):
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", str(route.path))
        routes |= {(method, path) for method in methods}
    return routes


@asynccontextmanager
async def matrix_world(db: Database) -> AsyncIterator[World]:
    """The full app (``services.api.create_app``, what ``leadflow dev`` serves) over ``db``, with
    a public key, a revoked one, a stored secret key, a revoked one, one revoked after it signed
    in, the principals, the ad platforms' and a HubSpot subscription's secrets; every column
    signed in to the ops board where its key can."""
    settings = make_settings(
        db,
        auth={
            "secret_keys": [SECRET],
            "principals": [
                {"name": name, "key": _principal_key(name), "roles": roles}
                for name, roles in PRINCIPALS.items()
            ],
        },
        platforms={
            "google_ads_key": GOOGLE_KEY,
            "meta_app_secret": META_SECRET,
            "meta_verify_token": META_TOKEN,
        },
        # Revocation bites at once (the cache's lag is intake's own test), so a key revoked
        # after it was used is refused by the API as one revoked before.
        intake={"key_cache_s": 0},
        webhooks={"allowed_networks": ["127.0.0.0/8"]},  # the HubSpot subscription's API
    )
    runtime = Runtime.create(settings)
    try:
        # Made before the app's first look-up, so no cache holds the revoked keys as valid.
        public, _ = await _key(runtime, "public", origins=[FORM_ORIGIN])
        stored, _ = await _key(runtime, "secret")
        revoked_public, _ = await _key(runtime, "public", origins=[OLD_ORIGIN], revoked=True)
        revoked_secret, _ = await _key(runtime, "secret", revoked=True)
        late, late_id = await _key(runtime, "secret")
        credentials = {
            "anon": Credential(),
            "pk": Credential(api_key=public, origin=FORM_ORIGIN),
            "pk@x": Credential(api_key=public, origin=OTHER_ORIGIN),
            "pk-rv": Credential(api_key=revoked_public, origin=OLD_ORIGIN),
            "pk-b": Credential(bearer=public),
            "sk": Credential(bearer=SECRET),
            "sk-db": Credential(bearer=stored),
            "sk-rv": Credential(bearer=revoked_secret),
            "sk-rl": Credential(bearer=late),
        } | {name: Credential(bearer=_principal_key(name)) for name in PRINCIPALS}
        app = create_app(runtime)
        transport = httpx.ASGITransport(app=EndsStreams(app), client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            world = World(app, runtime, client, credentials, await _hubspot(client))
            for column, credential in credentials.items():
                token = await _sign_in(client, credential.key)
                if token is not None:
                    world.sessions[column] = token
            async with runtime.sessions.begin() as session:  # sk-rl: revoked once signed in
                await revoke_key(session, late_id, now=datetime.now(UTC))
            yield world
    finally:
        await runtime.close()


class EndsStreams:
    """Ends a streamed answer (the board's server-sent events never end by themselves) once its
    status is sent: the client then reads as disconnected, as a browser closing the page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/stream"):
            await self.app(scope, receive, send)
            return
        started, request_read = asyncio.Event(), False

        async def sending(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                started.set()

        async def receiving() -> Message:
            nonlocal request_read
            if not request_read:
                message = await receive()
                request_read = not message.get("more_body", False)
                return message
            await started.wait()
            return {"type": "http.disconnect"}

        await self.app(scope, receiving, sending)


def _principal_key(name: str) -> str:
    return f"principal-key-of-{name}"


async def _key(
    runtime: Runtime, kind: str, *, origins: list[str] | None = None, revoked: bool = False
) -> tuple[str, UUID]:
    async with runtime.sessions.begin() as session:
        now = datetime.now(UTC)
        key, row = await create_key(session, kind=kind, now=now, origins=origins or ())
        if revoked:
            await revoke_key(session, row.id, now=now)
    return key, row.id


async def _hubspot(client: httpx.AsyncClient) -> str:
    body = {
        "kind": "hubspot",
        "hubspot": {"base_url": "http://127.0.0.1:9"},
        "credentials": {"token": "pat-matrix", "app_secret": HUBSPOT_SECRET},
    }
    created = await client.post(
        "/v1/subscriptions", json=body, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _sign_in(client: httpx.AsyncClient, key: str) -> str | None:
    client.cookies.clear()
    answer = await client.post(SIGN_IN, data={"key": key})
    client.cookies.clear()
    if answer.status_code != 303:
        return None
    cookie = answer.headers.get("set-cookie", "")
    found = re.match(rf"{COOKIE}=([^;]+)", cookie)
    return found.group(1) if found else None


def _concrete(path: str, world: World) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "subscription_id" and "/crm/hubspot/" in path:
            return world.hubspot_subscription
        return SAMPLE_PATH_VALUES.get(name, str(UUID(int=0x5EED)))

    return re.sub(r"\{(\w+)\}", value, path)


def _minimal(method: str, path: str, world: World) -> dict[str, Any]:
    """The smallest request that reaches the route's credential check: a body only where the
    check reads it (a lead's post, a signature's side, the webhooks' raw bodies)."""
    request: dict[str, Any] = {"headers": {}}
    if path == "/v1/leads" and method == "POST":
        request["json"] = {"email": f"matrix.{uuid4().hex[:8]}@example.com"}
    elif path.endswith("/approvals"):
        request["json"] = {"side": "marketing", "content_hash": "0" * 64}
    elif path == "/v1/ingest/meta" and method == "GET":
        request["params"] = {"hub.mode": "subscribe", "hub.challenge": "42"}
    elif path.startswith(("/v1/ingest/", "/v1/crm/")):
        body = b"[]" if "/crm/" in path else b"{}"
        request["content"] = body
        request["headers"]["Content-Type"] = "application/json"
    elif method in {"POST", "PATCH", "PUT"}:
        request["json"] = {}
    return request


def _sign(request: dict[str, Any], method: str, url: str, *, valid: bool) -> None:
    """The route's own proof of its sender: Google's key in the body, Meta's verify token or
    body signature, HubSpot's v3 signature over method, URI, body and timestamp."""
    wrong = "" if valid else "not-"
    headers, path = request["headers"], url.removeprefix(BASE)
    if path == "/v1/ingest/google-ads":
        request["content"] = orjson.dumps({"google_key": wrong + GOOGLE_KEY})
    elif path == "/v1/ingest/meta" and method == "GET":
        request["params"]["hub.verify_token"] = wrong + META_TOKEN
    elif path == "/v1/ingest/meta":
        digest = hmac.new((wrong + META_SECRET).encode(), request["content"], hashlib.sha256)
        headers["X-Hub-Signature-256"] = "sha256=" + digest.hexdigest()
    elif path.startswith("/v1/crm/hubspot/"):
        timestamp = str(int(time.time() * 1000))
        signature = sign_hubspot_v3(
            wrong + HUBSPOT_SECRET, method, url, request["content"], timestamp
        )
        headers |= {"X-HubSpot-Request-Timestamp": timestamp, "X-HubSpot-Signature-v3": signature}
    else:
        raise AssertionError(f"{method} {path} has no signature of its own")
