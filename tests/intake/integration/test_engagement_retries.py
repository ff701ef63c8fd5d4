"""Retried activities and outcomes: an Idempotency-Key or the body's external_id makes a retry get
the first answer, never a second record or event — also when the retries race — on both
databases, over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from services.intake.models import IdempotencyRecord, LeadActivityRow, LeadOutcomeRow
from shared.models import LeadHistory, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database
from tests.support.intake import AUTH, client_for, count, intake, new_key

ACTIVITY = {"type": "demo_request", "properties": {"url": "https://example.com/demo"}}
WON = {"outcome": "won", "amount": "1200.00", "currency": "EUR", "crm": "hubspot"}


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    async with intake(db) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(runtime, headers=AUTH) as client:
        yield client


async def new_lead(client: httpx.AsyncClient) -> str:
    email = f"ada.{uuid4().hex[:8]}@example.com"
    response = await client.post("/v1/leads", json={"email": email})
    assert response.status_code == 202, response.text
    return str(response.json()["lead_id"])


async def events(runtime: Runtime, kind: str) -> int:
    return await count(runtime, OutboxMessage, OutboxMessage.type == kind)


async def test_a_retried_activity_with_one_idempotency_key_is_recorded_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id = await new_lead(client)
    url = f"/v1/leads/{lead_id}/activities"

    first = await client.post(url, json=ACTIVITY, headers={"Idempotency-Key": "a-1"})
    retry = await client.post(url, json=ACTIVITY, headers={"Idempotency-Key": "a-1"})
    other = await client.post(url, json=ACTIVITY, headers={"Idempotency-Key": "a-2"})
    changed = await client.post(
        url, json=ACTIVITY | {"type": "page_view"}, headers={"Idempotency-Key": "a-1"}
    )
    malformed = await client.post(url, json=ACTIVITY, headers={"Idempotency-Key": "x" * 201})

    assert first.status_code == retry.status_code == other.status_code == 202
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.json()["activity_id"] != first.json()["activity_id"]
    assert (changed.status_code, changed.json()["field"]) == (422, "Idempotency-Key")
    assert (malformed.status_code, malformed.json()["field"]) == (422, "Idempotency-Key")
    assert await count(runtime, LeadActivityRow) == 2
    assert await events(runtime, "lead.activity") == 2
    assert await count(runtime, LeadHistory, LeadHistory.kind == "lead.activity") == 2


async def test_an_outcome_is_deduplicated_by_its_external_id_whoever_names_the_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id = await new_lead(client)
    body = WON | {"external_id": "evt_123", "crm_id": "crm-1"}

    first = await client.post(f"/v1/leads/{lead_id}/outcomes", json=body)
    by_crm_id = await client.post("/v1/leads/by-crm-id/crm-1/outcomes", json=body)
    changed = await client.post(f"/v1/leads/{lead_id}/outcomes", json=body | {"amount": "9.00"})
    other_event = await client.post(
        f"/v1/leads/{lead_id}/outcomes", json=body | {"external_id": "evt_124"}
    )

    assert first.status_code == by_crm_id.status_code == other_event.status_code == 202
    assert by_crm_id.json() == first.json()
    assert by_crm_id.headers["idempotent-replayed"] == "true"
    assert (changed.status_code, changed.json()["field"]) == (422, "external_id")
    assert other_event.json()["outcome_id"] != first.json()["outcome_id"]
    assert await count(runtime, LeadOutcomeRow) == 2
    assert await events(runtime, "lead.outcome") == 2


async def test_the_same_external_id_on_two_leads_or_two_kinds_does_not_meet(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    one, two = await new_lead(client), await new_lead(client)
    for lead_id in (one, two):
        activity = await client.post(
            f"/v1/leads/{lead_id}/activities", json=ACTIVITY | {"external_id": "e-1"}
        )
        outcome = await client.post(
            f"/v1/leads/{lead_id}/outcomes", json={"outcome": "accepted", "external_id": "e-1"}
        )
        assert activity.status_code == outcome.status_code == 202
        assert "idempotent-replayed" not in {*activity.headers, *outcome.headers}
    assert await count(runtime, LeadActivityRow) == 2
    assert await count(runtime, LeadOutcomeRow) == 2


async def test_idempotency_keys_are_scoped_by_the_caller(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id = await new_lead(client)
    stored_key = await new_key(runtime, kind="secret")
    url = f"/v1/leads/{lead_id}/activities"

    mine = await client.post(url, json=ACTIVITY, headers={"Idempotency-Key": "k"})
    headers = {"Idempotency-Key": "k", "Authorization": f"Bearer {stored_key}"}
    theirs = await client.post(url, json=ACTIVITY, headers=headers)

    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["activity_id"] != theirs.json()["activity_id"]
    assert await count(runtime, LeadActivityRow) == 2


async def test_concurrent_retries_with_one_key_make_one_record_and_one_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    lead_id = await new_lead(client)
    url = f"/v1/leads/{lead_id}/outcomes"
    body = {"outcome": "accepted", "crm": "salesforce", "external_id": "evt-9"}

    answers = await asyncio.gather(
        *(client.post(url, json=body, headers={"Idempotency-Key": "same"}) for _ in range(12))
    )

    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert await count(runtime, LeadOutcomeRow) == 1
    assert await events(runtime, "lead.outcome") == 1
    assert await count(runtime, IdempotencyRecord) == 2  # the header's key and the external id


async def test_a_failed_post_leaves_no_record_so_its_retry_is_tried_again(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    one, two = await new_lead(client), await new_lead(client)
    body = {"outcome": "accepted", "crm_id": "c"}
    taken = await client.post(f"/v1/leads/{one}/outcomes", json=body)
    assert taken.status_code == 202
    headers = {"Idempotency-Key": "retry-me"}

    refused = await client.post(f"/v1/leads/{two}/outcomes", json=body, headers=headers)
    again = await client.post(f"/v1/leads/{two}/outcomes", json=body, headers=headers)

    assert refused.status_code == again.status_code == 409
    assert "idempotent-replayed" not in again.headers
