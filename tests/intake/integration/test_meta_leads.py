"""Meta lead ads: handshake, signed notifications, and fields fetched from a real local HTTP server
standing in for the Graph API — including that server failing for a while — on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.api import create_app
from services.intake.models import PlatformFetch, PlatformLead
from services.intake.platforms.fetch import FetchSweeper
from shared.models import Inquiry, Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings

APP_SECRET = "meta-app-secret"
VERIFY_TOKEN = "verify-me"
ACCESS_TOKEN = "EAAB-very-secret-page-token"
URL = "/v1/ingest/meta"


@dataclass
class GraphStub:
    """A tiny Graph API: ``GET /{leadgen_id}`` → field_data; can fail with 503 on demand."""

    leads: dict[str, list[dict]] = field(default_factory=dict)
    failing: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    base_url: str = ""

    async def lead(self, request: Request) -> JSONResponse:
        leadgen_id = request.path_params["leadgen_id"]
        self.requests.append((leadgen_id, request.query_params.get("access_token")))
        if request.query_params.get("access_token") != ACCESS_TOKEN:
            return JSONResponse({"error": {"type": "OAuthException", "code": 190}}, 400)
        if self.failing:
            return JSONResponse({"error": {"type": "OAuthException", "code": 2}}, 503)
        if leadgen_id not in self.leads:
            return JSONResponse({"error": {"type": "GraphMethodException", "code": 100}}, 404)
        return JSONResponse({"id": leadgen_id, "field_data": self.leads[leadgen_id]})


@pytest.fixture
async def graph() -> AsyncIterator[GraphStub]:
    stub = GraphStub()
    app = Starlette(routes=[Route("/v21.0/{leadgen_id}", stub.lead)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await eventually(lambda: server.started, within=10)
    stub.base_url = f"http://127.0.0.1:{port}/v21.0"
    yield stub
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def runtime(db: Database, graph: GraphStub) -> AsyncIterator[Runtime]:
    platforms = {
        "meta_app_secret": APP_SECRET,
        "meta_verify_token": VERIFY_TOKEN,
        "meta_access_token": ACCESS_TOKEN,
        "meta_graph_url": graph.base_url,
        "meta_forms": {
            "form-2": {"fields": {"budget": "custom.budget_band"}},
            "form-test": {"test": True},
        },
        "fetch_attempts": 2,
        "fetch_backoff_s": 0,
        "retry_schedule_s": [60, 300],
    }
    runtime = Runtime.create(make_settings(db, platforms=platforms))
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


def notification(*leadgen_ids: str, form_id: str = "form-1") -> bytes:
    changes = [
        {
            "field": "leadgen",
            "value": {
                "leadgen_id": leadgen_id,
                "page_id": "1001",
                "form_id": form_id,
                "ad_id": "2002",
                "adgroup_id": "3003",
                "created_time": 1767225600,
            },
        }
        for leadgen_id in leadgen_ids
    ]
    body = {"object": "page", "entry": [{"id": "1001", "time": 1767225600, "changes": changes}]}
    return json.dumps(body).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def field_data(email: str, **extra: str) -> list[dict]:
    fields = {"email": email, "full_name": "Grace Hopper", "phone_number": "+1 202 555 0143"}
    return [{"name": k, "values": [v]} for k, v in (fields | extra).items()]


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_verification_handshake_echoes_the_challenge(client: httpx.AsyncClient) -> None:
    ok = await client.get(
        URL,
        params={
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": VERIFY_TOKEN,
        },
    )
    assert ok.status_code == 200
    assert ok.text == "1158201444"
    assert ok.headers["content-type"].startswith("text/plain")

    wrong = await client.get(
        URL, params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "nope"}
    )
    assert wrong.status_code == 403 and wrong.json()["field"] == "hub.verify_token"
    mode = await client.get(
        URL, params={"hub.mode": "other", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN}
    )
    assert mode.status_code == 400


async def test_a_signed_notification_is_stored_then_fetched_and_becomes_a_lead(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    leadgen_id = uuid4().hex
    graph.leads[leadgen_id] = field_data("grace@example.com", budget="10k")
    body = notification(leadgen_id, form_id="form-2")

    response = await client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "new": 1}
    async with runtime.sessions() as session:
        record = await session.get(PlatformLead, ("meta", leadgen_id))
        assert record is not None and record.status == "stored"
        lead = await session.get(Lead, record.lead_id)
        inquiry = await session.scalar(select(Inquiry))
        [event] = (await session.scalars(select(OutboxMessage))).all()
    assert lead is not None and (lead.email, lead.first_name, lead.source) == (
        "grace@example.com",
        "Grace",
        "meta",
    )
    assert lead.phone == "+12025550143"
    assert inquiry is not None and inquiry.submission["custom"] == {"budget_band": "10k"}
    assert record.detail["ad_id"] == "2002"
    assert json.loads(event.payload)["subject"] == str(lead.id)
    assert ACCESS_TOKEN not in event.payload
    assert graph.requests == [(leadgen_id, ACCESS_TOKEN)]
    assert await count(runtime, PlatformFetch) == 0


async def test_a_lead_from_a_form_configured_as_a_test_form_is_flagged_is_test(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    test_lead, real_lead = uuid4().hex, uuid4().hex
    graph.leads[test_lead] = field_data("test@fb.com")
    graph.leads[real_lead] = field_data("grace@example.com")
    for leadgen_id, form_id in ((test_lead, "form-test"), (real_lead, "form-1")):
        body = notification(leadgen_id, form_id=form_id)
        response = await client.post(URL, content=body, headers=signed(body))
        assert response.status_code == 200, response.text

    async with runtime.sessions() as session:
        flagged = await session.get(PlatformLead, ("meta", test_lead))
        real = await session.get(PlatformLead, ("meta", real_lead))
        assert flagged is not None and real is not None
        assert (flagged.status, flagged.is_test, real.is_test) == ("stored", True, False)
        test_row = await session.get(Lead, flagged.lead_id)
        real_row = await session.get(Lead, real.lead_id)
        payloads = (await session.scalars(select(OutboxMessage.payload))).all()
    assert test_row is not None and test_row.is_test
    assert real_row is not None and not real_row.is_test
    received = {e["data"]["lead_id"]: e["data"]["is_test"] for e in map(json.loads, payloads)}
    assert received == {str(test_row.id): True, str(real_row.id): False}


async def test_a_repeated_notification_is_acknowledged_and_changes_nothing(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    leadgen_id = uuid4().hex
    graph.leads[leadgen_id] = field_data("ada@example.com")
    body = notification(leadgen_id, leadgen_id)

    first = await client.post(URL, content=body, headers=signed(body))
    again = await client.post(URL, content=body, headers=signed(body))

    assert first.json() == {"received": 1, "new": 1}
    assert again.status_code == 200 and again.json() == {"received": 1, "new": 0}
    assert await count(runtime, Inquiry) == 1
    assert len(graph.requests) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 403),
        (signed(b"a different body"), 403),
        (signed(notification("x"), secret="not-the-app-secret"), 403),
        ({"X-Hub-Signature-256": "sha1=abc"}, 403),
    ],
)
async def test_a_missing_or_invalid_signature_is_refused_and_nothing_is_kept(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub, headers: dict, status: int
) -> None:
    body = notification(uuid4().hex)
    response = await client.post(URL, content=body, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "X-Hub-Signature-256"
    assert await count(runtime, PlatformLead) == 0
    assert graph.requests == []


async def test_a_graph_api_that_fails_for_a_while_keeps_the_lead_and_a_later_sweep_gets_it(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Worst case: httpx logging its request lines (the services' logging turns them off).
    caplog.set_level(logging.DEBUG, logger="httpx")
    leadgen_id = uuid4().hex
    graph.leads[leadgen_id] = field_data("hedy@example.com")
    graph.failing = True
    body = notification(leadgen_id)

    response = await client.post(URL, content=body, headers=signed(body))

    assert response.status_code == 200  # acknowledged: the notification is stored
    assert len(graph.requests) == 2  # fetch_attempts quick tries, then rescheduled
    async with runtime.sessions() as session:
        pending = await session.scalar(select(PlatformFetch))
        record = await session.get(PlatformLead, ("meta", leadgen_id))
    assert pending is not None and pending.attempts == 1 and pending.locked_until is None
    assert pending.last_error is not None and "HTTP 503" in pending.last_error
    assert record is not None and record.status == "pending"
    assert await count(runtime, Inquiry) == 0

    sweeper = FetchSweeper(runtime.sessions, runtime.settings)
    assert await sweeper.sweep(datetime.now(UTC)) == 0  # not due yet
    later = pending.due_at + timedelta(seconds=1)
    assert await sweeper.sweep(later) == 1  # still failing: rescheduled further out
    async with runtime.sessions() as session:
        pending = await session.scalar(select(PlatformFetch))
    assert pending is not None and pending.attempts == 2
    assert pending.due_at == later + timedelta(seconds=300)

    graph.failing = False
    assert await sweeper.sweep(pending.due_at) == 1

    async with runtime.sessions() as session:
        record = await session.get(PlatformLead, ("meta", leadgen_id))
        lead = await session.scalar(select(Lead))
    assert record is not None and record.status == "stored" and lead is not None
    assert record.lead_id == lead.id and lead.email == "hedy@example.com"
    assert await count(runtime, PlatformFetch) == 0
    assert await count(runtime, OutboxMessage) == 1
    assert len(graph.requests) == 5
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx logs URLs
    # Every log line of this process but the stand-in Graph server's own access log (Meta's side).
    ours = [r for r in caplog.records if not r.name.startswith("uvicorn")]
    assert [r.getMessage() for r in ours if ACCESS_TOKEN in r.getMessage()] == []


async def test_the_background_sweeper_retries_on_its_own(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    """The process's sweeper loop (as `leadflow intake` runs it) picks up a due fetch."""
    leadgen_id = uuid4().hex
    graph.failing = True
    body = notification(leadgen_id)
    await client.post(URL, content=body, headers=signed(body))
    async with runtime.sessions.begin() as session:  # make the retry due now
        pending = await session.scalar(select(PlatformFetch))
        assert pending is not None
        pending.due_at = datetime.now(UTC) - timedelta(seconds=1)
    graph.leads[leadgen_id] = field_data("katherine@example.com")
    graph.failing = False

    sweeper = FetchSweeper(runtime.sessions, runtime.settings)
    task = asyncio.create_task(sweeper.run())
    try:

        async def stored() -> bool:
            async with runtime.sessions() as session:
                record = await session.get(PlatformLead, ("meta", leadgen_id))
                return record is not None and record.status == "stored"

        await eventually(stored, within=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_two_sweeps_at_once_fetch_each_lead_once(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    ids = [uuid4().hex for _ in range(6)]
    graph.failing = True
    body = notification(*ids)
    await client.post(URL, content=body, headers=signed(body))
    for index, leadgen_id in enumerate(ids):
        graph.leads[leadgen_id] = field_data(f"person{index}.{leadgen_id[:6]}@example.com")
    graph.failing = False
    graph.requests.clear()
    due = datetime.now(UTC) + timedelta(hours=1)

    one, two = (
        FetchSweeper(runtime.sessions, runtime.settings),
        FetchSweeper(runtime.sessions, runtime.settings),
    )
    claimed = await asyncio.gather(one.sweep(due), two.sweep(due))

    assert sum(claimed) == 6
    assert sorted(r[0] for r in graph.requests) == sorted(ids)
    assert await count(runtime, Inquiry) == 6
    assert await count(runtime, PlatformFetch) == 0


async def test_a_fetched_lead_with_no_way_to_reach_it_is_kept_as_invalid(
    client: httpx.AsyncClient, runtime: Runtime, graph: GraphStub
) -> None:
    leadgen_id = uuid4().hex
    graph.leads[leadgen_id] = [{"name": "full_name", "values": ["No Contact"]}]
    body = notification(leadgen_id)

    await client.post(URL, content=body, headers=signed(body))

    async with runtime.sessions() as session:
        record = await session.get(PlatformLead, ("meta", leadgen_id))
    assert record is not None and record.status == "invalid"
    assert record.error is not None and "email or a phone" in record.error
    assert await count(runtime, Inquiry) == 0
