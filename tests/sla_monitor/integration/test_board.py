"""The ops board over HTTP, on SQLite and PostgreSQL: sign-in into a signed HttpOnly cookie (never
the key), the board behind it, acknowledgement only with the session's CSRF token, from our own
origin, by an acknowledger; and the live stream of changed clocks."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from services.api import create_app
from services.sla_monitor.ladder import Tier
from services.sla_monitor.live import LiveFeed
from services.sla_monitor.models import SlaClock
from services.sla_monitor.sessions import COOKIE
from shared.ids import new_id
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

ORIGIN = "http://leadflow.test"
OPS_KEY = "ops-key-0123456789abcdef0123456789"
VIEWER_KEY = "viewer-key-0123456789abcdef01234567"
PRINCIPALS = [
    {"name": "ops-ann", "key": OPS_KEY, "roles": ["ops"]},
    {"name": "vic", "key": VIEWER_KEY, "roles": ["approver:marketing"]},
]
AUTH = {"secret_keys": ["sk_test"], "principals": PRINCIPALS}


def auth_settings(db: Database, **auth: Any) -> Any:
    return make_settings(db, auth=AUTH | auth)


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(auth_settings(db))
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
        yield client


async def add_clock(runtime: Runtime, *, team: str = "inside", **overrides: Any) -> UUID:
    """An open first-response clock, started 5 minutes ago, due in 10."""
    now = datetime.now(UTC)
    started = now - timedelta(minutes=5)
    deadline = started + timedelta(minutes=15)
    tiers = [
        Tier(1, "50%", "warning", started + timedelta(minutes=7.5), ("ann@example.com",)),
        Tier(2, "100%", "breach", deadline, ("lead@example.com",)),
    ]
    values: dict[str, Any] = {
        "id": new_id(),
        "lead_id": new_id(),
        "kind": "first_response",
        "state": "open",
        "policy": "inbound-standard",
        "policy_version": 1,
        "owner_email": "ann@example.com",
        "team": team,
        "calendar": "always",
        "started_at": started,
        "target_s": 900.0,
        "deadline": deadline,
        "tiers": [t.to_json() for t in tiers],
        "responses": ["call", "email"],
        "next_tier": 1,
        "next_due_at": tiers[0].due,
        "created_at": now,
        "updated_at": now,
    }
    async with runtime.sessions.begin() as session:
        session.add(SlaClock(**values | overrides))
    return UUID(str(values["id"]))


async def stored(runtime: Runtime, clock_id: UUID) -> SlaClock:
    async with runtime.sessions() as session:
        row = await session.get(SlaClock, clock_id)
        assert row is not None
        return row


async def sign_in(client: httpx.AsyncClient, key: str = OPS_KEY) -> str:
    """Signs in; returns the CSRF token the board page carries."""
    answer = await client.post("/ops/sign-in", data={"key": key}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303, answer.text
    board = await client.get("/ops/sla")
    assert board.status_code == 200, board.text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', board.text)
    assert found, board.text
    return found.group(1)


def ack_headers(csrf: str | None, origin: str | None = ORIGIN) -> dict[str, str]:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return headers | ({"Origin": origin} if origin is not None else {})


async def test_signing_in_sets_an_httponly_strict_cookie_without_the_key(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock_id = await add_clock(runtime)
    answer = await client.post("/ops/sign-in", data={"key": OPS_KEY}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303 and answer.headers["location"] == "/ops/sla"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "path=/ops" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert "secure" not in attributes  # plain http here; https below
    assert OPS_KEY not in cookie and OPS_KEY not in str(client.cookies.get(COOKIE))

    board = await client.get("/ops/sla")
    assert board.status_code == 200
    assert "default-src 'self'" in board.headers["content-security-policy"]
    assert str(clock_id) in board.text and "ops-ann" in board.text
    assert "<script>" not in board.text  # no inline script: the CSP would block it
    assert '<script src="/ops/static/board.js?v=' in board.text
    script = await client.get("/ops/static/board.js")
    assert script.status_code == 200 and "EventSource" in script.text


async def test_signing_in_over_https_marks_the_cookie_secure(runtime: Runtime) -> None:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="https://leadflow.test") as client:
        answer = await client.post("/ops/sign-in", data={"key": OPS_KEY})
    assert answer.status_code == 303
    assert "secure" in {p.strip().lower() for p in answer.headers["set-cookie"].split(";")}


async def test_a_wrong_key_gets_the_form_again_with_401(client: httpx.AsyncClient) -> None:
    for key in ("not-a-key", ""):
        answer = await client.post("/ops/sign-in", data={"key": key}, headers={"Origin": ORIGIN})
        assert answer.status_code == 401
        assert "set-cookie" not in answer.headers
        assert "That key is not valid." in answer.text and 'name="key"' in answer.text
    assert (await client.get("/ops/sla")).status_code == 303


async def test_the_board_without_a_valid_session_redirects_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/ops/sla")
    assert answer.status_code == 303 and answer.headers["location"] == "/ops/sign-in"
    assert (await client.get("/ops/sla/stream")).status_code == 401

    await sign_in(client)
    token = client.cookies[COOKIE]
    body, _, mac = token.partition(".")
    payload = orjson.loads(_unb64(body))
    payload["roles"] = ["admin"]  # a forged promotion: the signature no longer matches
    client.cookies.set(COOKIE, f"{_b64(orjson.dumps(payload))}.{mac}", domain="leadflow.test")
    assert (await client.get("/ops/sla")).status_code == 303


async def test_acknowledging_needs_the_sessions_csrf_token(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock_id = await add_clock(runtime)
    csrf = await sign_in(client)
    path = f"/ops/sla/clocks/{clock_id}/acknowledge"
    for headers in (ack_headers(None), ack_headers("x" * len(csrf))):
        refused = await client.post(path, json={"note": ""}, headers=headers)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["field"] == "X-CSRF-Token"
    assert (await stored(runtime, clock_id)).acknowledged_at is None

    answer = await client.post(path, json={"note": "calling now"}, headers=ack_headers(csrf))
    assert answer.status_code == 200, answer.text
    assert answer.json()["acknowledged_by"] == "ops-ann" and answer.json()["id"] == str(clock_id)
    row = await stored(runtime, clock_id)
    assert row.acknowledged_by == "ops-ann" and row.acknowledged_at is not None
    async with runtime.sessions() as session:
        query = select(func.count()).where(OutboxMessage.type == "sla.acknowledged")
        assert await session.scalar(query) == 1


async def test_a_caller_without_an_acknowledger_role_is_refused(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    clock_id = await add_clock(runtime)
    csrf = await sign_in(client, VIEWER_KEY)
    board = await client.get("/ops/sla")
    assert str(clock_id) in board.text and "Acknowledge</button>" not in board.text
    path = f"/ops/sla/clocks/{clock_id}/acknowledge"
    refused = await client.post(path, json={}, headers=ack_headers(csrf))
    assert refused.status_code == 403 and "role" in refused.json()["detail"]
    assert (await stored(runtime, clock_id)).acknowledged_at is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {},
    ],
    ids=["other-origin", "null-origin", "cross-site-fetch", "same-site-fetch", "no-origin"],
)
async def test_a_cross_origin_acknowledgement_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    clock_id = await add_clock(runtime)
    csrf = await sign_in(client)
    path = f"/ops/sla/clocks/{clock_id}/acknowledge"
    refused = await client.post(path, json={}, headers=headers | {"X-CSRF-Token": csrf})
    assert refused.status_code == 403 and refused.json()["field"] == "Origin"
    assert (await stored(runtime, clock_id)).acknowledged_at is None
    same = {"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf}  # Origin left out: allowed
    assert (await client.post(path, json={}, headers=same)).status_code == 200


async def test_a_session_opens_the_board_on_another_replica_with_the_same_settings(
    db: Database, client: httpx.AsyncClient
) -> None:
    await sign_in(client)
    token = client.cookies[COOKIE]
    for auth, expected in [({}, 200), ({"secret_keys": ["sk_rotated"]}, 303)]:
        replica = Runtime.create(auth_settings(db, **auth))
        try:
            transport = httpx.ASGITransport(app=create_app(replica))
            async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as other:
                other.cookies.set(COOKIE, token, domain="leadflow.test")
                assert (await other.get("/ops/sla")).status_code == expected, auth
        finally:
            await replica.close()


async def test_the_board_filters_by_team_and_shows_attainment(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    inside, outside = await add_clock(runtime), await add_clock(runtime, team="outside")
    now = datetime.now(UTC)
    met = {"state": "met", "closed_at": now - timedelta(minutes=1), "working_time_s": 240.0}
    await add_clock(runtime, deadline=now + timedelta(minutes=5), next_due_at=None, **met)
    await sign_in(client)
    board = (await client.get("/ops/sla", params={"team": "inside"})).text
    assert str(inside) in board and str(outside) not in board
    assert 'data-stream="/ops/sla/stream?team=inside"' in board
    assert "100%" in board and 'class="fill good" width="100.0"' in board


async def test_the_stream_sends_each_changed_clock_of_its_filter(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    inside, outside = await add_clock(runtime), await add_clock(runtime, team="outside")
    csrf = await sign_in(client)
    now = datetime.now(UTC)
    feed = LiveFeed(
        runtime, filters={"team": "inside"}, until=now + timedelta(hours=1), poll_s=0.05
    )

    async def connected() -> bool:
        return False

    events = feed.events(connected, start=now)
    assert await anext(events) == "retry: 2000\n\n"
    first = await _next_clock(events)
    assert first["clock"]["id"] == str(inside) and first["row"]["status"] == "on time"
    for clock_id in (outside, inside):
        path = f"/ops/sla/clocks/{clock_id}/acknowledge"
        assert (await client.post(path, json={}, headers=ack_headers(csrf))).status_code == 200
    changed = await _next_clock(events)
    assert changed["clock"]["id"] == str(inside), "a clock outside the filter was sent"
    assert changed["row"]["status"] == "acknowledged by ops-ann"
    assert changed["row"]["ackable"] is False
    await events.aclose()


async def _next_clock(events: AsyncIterator[str]) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            message = await anext(events)
            if message.startswith("id: "):
                lines = dict(line.split(": ", 1) for line in message.strip().split("\n"))
                assert lines["event"] == "clock"
                return dict(orjson.loads(lines["data"]))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
