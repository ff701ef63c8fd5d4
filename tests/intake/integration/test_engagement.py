"""Activities and CRM outcomes, stored with their events, on both databases; lookups by lead id,
email and CRM id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from services.api import create_app
from services.intake.models import LeadActivityRow, LeadOutcomeRow
from shared.models import Lead, LeadHistory, OutboxMessage
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
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://intake", headers=AUTH
    ) as client:
        yield client


async def new_lead(client: httpx.AsyncClient, email: str | None = None) -> tuple[str, str]:
    email = email or f"ada.{uuid4().hex[:8]}@example.com"
    response = await client.post("/v1/leads", json={"email": email, "first_name": "Ada"})
    assert response.status_code == 202, response.text
    return response.json()["lead_id"], email


async def events(runtime: Runtime, kind: str) -> list[dict]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.type == kind).order_by(OutboxMessage.seq)
        )
        return [json.loads(row.payload) for row in rows]


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_activity_is_stored_with_its_event_and_history(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id, _ = await new_lead(client)
    body = {
        "type": "pricing_page_visit",
        "occurred_at": "2026-03-02T10:15:00+01:00",
        "properties": {"url": "https://example.com/pricing", "seconds": 42},
    }

    response = await client.post(f"/v1/leads/{lead_id}/activities", json=body)

    assert response.status_code == 202, response.text
    stored = response.json()
    async with runtime.sessions() as session:
        row = await session.get(LeadActivityRow, UUID(stored["activity_id"]))
        history = await session.scalar(
            select(LeadHistory).where(LeadHistory.kind == "lead.activity")
        )
    assert row is not None and row.kind == "pricing_page_visit"
    assert row.occurred_at.isoformat() == "2026-03-02T09:15:00+00:00"
    assert row.properties == body["properties"]
    [event] = await events(runtime, "lead.activity")
    assert event["id"] == stored["event_id"] and event["subject"] == lead_id
    assert event["data"]["kind"] == "pricing_page_visit"
    assert event["data"]["detail"] == body["properties"]
    assert event["data"]["activity_id"] == stored["activity_id"]
    assert event["data"]["is_test"] is False
    assert history is not None and history.event_id == UUID(stored["event_id"])


async def test_outcomes_by_id_email_and_crm_id(client: httpx.AsyncClient, runtime: Runtime) -> None:
    lead_id, email = await new_lead(client)

    accepted = await client.post(
        f"/v1/leads/by-email/{email.upper()}/outcomes",
        json={"outcome": "accepted", "crm": "salesforce", "crm_id": "00Q5e00000AbCdE"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["lead_id"] == lead_id

    found = await client.get("/v1/leads/by-crm-id/00Q5e00000AbCdE")
    assert found.status_code == 200 and found.json()["id"] == lead_id
    by_email = await client.get(f"/v1/leads/by-email/{email}")
    assert by_email.status_code == 200 and by_email.json()["id"] == lead_id

    booked = await client.post(
        "/v1/leads/by-crm-id/00Q5e00000AbCdE/outcomes",
        json={"outcome": "booked", "amount": "12000.10", "currency": "EUR"},
    )
    assert booked.status_code == 202, booked.text
    activity = await client.post(
        "/v1/leads/by-crm-id/00Q5e00000AbCdE/activities", json={"type": "webinar_attended"}
    )
    assert activity.status_code == 202 and activity.json()["lead_id"] == lead_id

    async with runtime.sessions() as session:
        lead = await session.get(Lead, UUID(lead_id))
        row = await session.get(LeadOutcomeRow, UUID(booked.json()["outcome_id"]))
    assert lead is not None and lead.crm_id == "00Q5e00000AbCdE"
    assert row is not None and row.amount == Decimal("12000.10") and row.currency == "EUR"
    outcomes = await events(runtime, "lead.outcome")
    assert [e["data"]["outcome"] for e in outcomes] == ["accepted", "booked"]
    assert outcomes[0]["data"]["crm"] == "salesforce"
    assert outcomes[1]["data"]["amount"] == 12000.10
    assert outcomes[1]["data"]["crm_id"] == "00Q5e00000AbCdE"
    assert {e["subject"] for e in outcomes} == {lead_id}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "rejected"}, "reason"),
        ({"outcome": "lost", "reason": "Not A Code!"}, "reason"),
        ({"outcome": "opportunity"}, "amount"),
        ({"outcome": "opportunity", "amount": "-5"}, "amount"),
        ({"outcome": "accepted", "amount": "5"}, "amount"),
        ({"outcome": "signed"}, "outcome"),
        ({"outcome": "responded", "occurred_at": "2026-03-02T10:00:00"}, "occurred_at"),
        ({"outcome": "responded", "occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
    ],
)
async def test_a_bad_outcome_is_a_problem_naming_the_field_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, body: dict, field: str
) -> None:
    lead_id, _ = await new_lead(client)

    response = await client.post(f"/v1/leads/{lead_id}/outcomes", json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert await count(runtime, LeadOutcomeRow) == 0
    assert await events(runtime, "lead.outcome") == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/leads/0b9e3a53-5b4c-4f7e-9d51-6f0c2a7e8d11/activities", "lead_id"),
        ("/v1/leads/by-email/nobody@example.com/activities", "email"),
        ("/v1/leads/by-crm-id/NOPE/activities", "crm_id"),
    ],
)
async def test_an_unknown_lead_is_a_404_naming_how_it_was_sought(
    client: httpx.AsyncClient, runtime: Runtime, path: str, field: str
) -> None:
    response = await client.post(path, json={"type": "page_view"})
    assert response.status_code == 404 and response.json()["field"] == field
    assert await count(runtime, LeadActivityRow) == 0


async def test_the_secret_key_is_required(client: httpx.AsyncClient) -> None:
    lead_id, _ = await new_lead(client)
    url = f"/v1/leads/{lead_id}/activities"
    missing = await client.post(url, json={"type": "page_view"}, headers={"Authorization": ""})
    wrong = await client.post(
        url, json={"type": "page_view"}, headers={"Authorization": "Bearer nope"}
    )
    assert (missing.status_code, wrong.status_code) == (401, 403)


async def test_a_crm_id_belongs_to_one_lead(client: httpx.AsyncClient, runtime: Runtime) -> None:
    first, _ = await new_lead(client)
    second, _ = await new_lead(client)
    ok = await client.post(
        f"/v1/leads/{first}/outcomes", json={"outcome": "accepted", "crm_id": "CRM-1"}
    )
    assert ok.status_code == 202

    clash = await client.post(
        f"/v1/leads/{second}/outcomes", json={"outcome": "accepted", "crm_id": "CRM-1"}
    )

    assert clash.status_code == 409 and clash.json()["field"] == "crm_id"
    assert len(await events(runtime, "lead.outcome")) == 1


async def test_a_test_leads_engagement_is_flagged_too(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id, _ = await new_lead(client)
    async with runtime.sessions.begin() as session:
        lead = await session.get(Lead, UUID(lead_id))
        assert lead is not None
        lead.is_test = True

    await client.post(f"/v1/leads/{lead_id}/activities", json={"type": "demo_request"})
    await client.post(f"/v1/leads/{lead_id}/outcomes", json={"outcome": "responded"})

    [activity] = await events(runtime, "lead.activity")
    [outcome] = await events(runtime, "lead.outcome")
    assert activity["data"]["is_test"] is True and outcome["data"]["is_test"] is True
