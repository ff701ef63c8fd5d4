"""The intake API over a real database (SQLite and PostgreSQL), through the ASGI app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select

from services.api import create_app
from services.intake.keys.store import create_key
from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

AUTH = {"Authorization": "Bearer sk_test"}


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_settings(db))
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A web form's client: posting needs a public key (reading, the secret key in AUTH)."""
    async with runtime.sessions.begin() as session:
        key, _ = await create_key(session, kind="public", now=datetime.now(UTC))
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://intake", headers={"X-API-Key": key}
    ) as client:
        yield client


def lead(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "email": f"ada.{uuid4().hex[:8]}@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
    }
    body.update(overrides)
    return body


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_post_stores_lead_inquiry_history_and_event_together(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post("/v1/leads", json=lead(email="  Ada@Example.COM "))
    assert response.status_code == 202
    body = response.json()
    assert body["new_lead"] is True
    assert response.headers["location"] == f"/v1/leads/{body['lead_id']}"

    async with runtime.sessions() as session:
        stored = await session.get(Lead, __import__("uuid").UUID(body["lead_id"]))
        assert stored is not None and stored.email == "ada@example.com"
        outbox = (await session.scalars(select(OutboxMessage))).all()
    assert [m.type for m in outbox] == ["lead.received"]
    event = json.loads(outbox[0].payload)
    assert event["subject"] == body["lead_id"]
    assert event["data"]["inquiry_id"] == body["inquiry_id"]
    assert outbox[0].aggregate_id == body["lead_id"]
    assert outbox[0].topic == runtime.settings.topics.intake
    assert await count(runtime, Inquiry) == 1
    assert await count(runtime, LeadHistory) == 1


async def test_a_repeat_inquiry_attaches_to_the_same_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = (await client.post("/v1/leads", json=lead(email="grace@example.com"))).json()
    second = (
        await client.post("/v1/leads", json=lead(email="GRACE@example.com", phone="+15550100"))
    ).json()
    assert second["lead_id"] == first["lead_id"]
    assert second["new_lead"] is False
    assert await count(runtime, Lead) == 1
    assert await count(runtime, Inquiry) == 2
    shown = (await client.get(f"/v1/leads/{first['lead_id']}", headers=AUTH)).json()
    assert shown["phone"] == "+15550100"  # new facts are added, old ones kept
    assert shown["first_name"] == "Ada"
    assert [i["id"] for i in shown["inquiries"]] == [first["inquiry_id"], second["inquiry_id"]]


async def test_concurrent_posts_for_one_email_make_one_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    responses = await asyncio.gather(
        *(client.post("/v1/leads", json=lead(email="same@example.com")) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["lead_id"] for r in responses}) == 1
    assert sum(r.json()["new_lead"] for r in responses) == 1
    assert await count(runtime, Lead) == 1
    assert await count(runtime, Inquiry) == 20
    assert await count(runtime, OutboxMessage) == 20


async def test_get_shows_the_lead_with_its_history(client: httpx.AsyncClient) -> None:
    accepted = (await client.post("/v1/leads", json=lead(phone="+441234"))).json()
    response = await client.get(f"/v1/leads/{accepted['lead_id']}", headers=AUTH)
    assert response.status_code == 200
    shown = response.json()
    assert shown["stage"] == "inquiry"
    assert shown["score"] is None
    assert [h["kind"] for h in shown["history"]] == ["lead.received"]
    assert shown["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": "No Contact"}, "body"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b.co", "source": "Bad Source!"}, "source"),
        ({"email": "a@b.co", "first_name": "x" * 201}, "first_name"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime, body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/leads", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in {e["field"] for e in problem["errors"]}
    assert await count(runtime, Lead) == 0
    assert await count(runtime, OutboxMessage) == 0


async def test_malformed_json_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/leads", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_reading_a_lead_needs_a_secret_key(client: httpx.AsyncClient) -> None:
    accepted = (await client.post("/v1/leads", json=lead())).json()
    url = f"/v1/leads/{accepted['lead_id']}"
    missing = await client.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await client.get(url, headers={"Authorization": "Bearer sk_wrong"})
    assert wrong.status_code == 403
    assert wrong.headers["content-type"] == "application/problem+json"


async def test_unknown_lead_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/leads/{uuid4()}", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["field"] == "lead_id"
    malformed = await client.get("/v1/leads/not-a-uuid", headers=AUTH)
    assert malformed.status_code == 404  # no route takes an id of that shape


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    metrics = await client.get("/metrics")
    assert "leadflow_outbox_published_total" in metrics.text


async def test_a_body_over_the_limit_is_413_and_stores_nothing(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    limit = runtime.settings.http.max_body_bytes
    big = lead(custom={"notes": "x" * limit})
    response = await client.post("/v1/leads", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert str(limit) in response.json()["detail"]

    async def chunks():  # no Content-Length: counted as it streams in
        payload = json.dumps(big).encode()
        for start in range(0, len(payload), 4096):
            yield payload[start : start + 4096]

    streamed = await client.post(
        "/v1/leads", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await count(runtime, Lead) == 0


async def test_an_unreachable_database_is_a_503_to_retry_not_a_500(
    db: Database, tmp_path: Path
) -> None:
    unreachable = (  # SQLite cannot open a folder (a path in a missing one, root can make)
        "postgresql://postgres@127.0.0.1:1/test"
        if db.kind == "postgresql"
        else f"sqlite:///{tmp_path}"
    )
    runtime = Runtime.create(make_settings(db, db={"url": unreachable}))
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))  # the app raises nothing
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            response = await client.post("/v1/leads", json=lead(), headers=AUTH)
    finally:
        await runtime.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "2"
    assert "retry" in response.json()["detail"]
