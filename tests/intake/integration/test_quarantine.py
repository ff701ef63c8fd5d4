"""Reviewing quarantined inquiries over HTTP, on both databases: the list, a release that merges
into the person's lead and emits lead.received exactly once (concurrent releases too), a release
that makes a new lead, and a discard that erases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database
from tests.support.intake import AUTH, client_for, count, intake, rows


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    async with intake(db) as runtime:
        yield runtime


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(runtime, headers=AUTH) as client:
        yield client


async def spam(client: httpx.AsyncClient, email: str, **extra: Any) -> dict[str, Any]:
    body = {"email": email, "first_name": "Ada", "_gotcha": "http://spam.example"} | extra
    response = await client.post("/v1/leads", data=body, headers={"Accept": "application/json"})
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def received(runtime: Runtime) -> list[dict[str, Any]]:
    messages = await rows(runtime, OutboxMessage, OutboxMessage.type == "lead.received")
    return [json.loads(m.payload)["data"] for m in messages]


async def test_the_list_shows_held_inquiries_newest_first_page_by_page(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    held = [await spam(client, f"bot{i}@example.com") for i in range(3)]
    await client.post("/v1/leads", json={"email": "real@example.com"})

    first = await client.get("/v1/quarantine", params={"limit": 2})
    second = await client.get(
        "/v1/quarantine", params={"limit": 2, "before": first.json()["next_before"]}
    )
    unauthorised = await client.get("/v1/quarantine", headers={"Authorization": ""})
    bad_limit = await client.get("/v1/quarantine", params={"limit": 0})

    assert first.status_code == second.status_code == 200, first.text
    ids = [i["inquiry_id"] for i in first.json()["items"] + second.json()["items"]]
    assert ids == [h["inquiry_id"] for h in reversed(held)]
    assert second.json()["next_before"] is None
    item = first.json()["items"][0]
    assert (item["reason"], item["source"], item["lead_id"]) == (
        "honeypot",
        "web",
        held[2]["lead_id"],
    )
    assert item["submission"]["email"] == "bot2@example.com"
    assert unauthorised.status_code == 401
    assert unauthorised.headers["content-type"] == "application/problem+json"
    assert (bad_limit.status_code, bad_limit.json()["field"]) == (422, "limit")


async def test_a_release_merges_into_the_persons_lead_and_emits_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    real = (await client.post("/v1/leads", json={"email": "ada@example.com"})).json()
    held = await spam(client, "ada@example.com", company="Analytical Engines")
    assert len(await received(runtime)) == 1

    released = await client.post(f"/v1/quarantine/{held['inquiry_id']}/release")
    again = await client.post(f"/v1/quarantine/{held['inquiry_id']}/release")

    assert released.status_code == 200, released.text
    assert released.json() == {
        "lead_id": real["lead_id"],
        "inquiry_id": held["inquiry_id"],
        "new_lead": False,
        "status": "released",
    }
    assert "idempotent-replayed" not in released.headers
    assert (again.status_code, again.json()) == (200, released.json())
    assert again.headers["idempotent-replayed"] == "true"
    events = await received(runtime)
    assert len(events) == 2
    assert events[1] == events[1] | {
        "lead_id": real["lead_id"],
        "inquiry_id": held["inquiry_id"],
        "new_lead": False,
    }
    [inquiry] = await rows(runtime, Inquiry, Inquiry.id == UUID(held["inquiry_id"]))
    assert (inquiry.lead_id, inquiry.quarantine_reason) == (UUID(real["lead_id"]), None)
    assert inquiry.raw is not None and inquiry.raw["_gotcha"] == "http://spam.example"
    [lead] = await rows(runtime, Lead, Lead.id == UUID(real["lead_id"]))
    assert lead.company == "Analytical Engines" and not lead.quarantined
    assert await count(runtime, Lead, Lead.id == UUID(held["lead_id"])) == 0
    assert await count(runtime, LeadHistory, LeadHistory.kind == "lead.released") == 1
    assert (await client.get("/v1/quarantine")).json()["items"] == []


async def test_concurrent_releases_emit_lead_received_once(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    held = await spam(client, "grace@example.com")

    answers = await asyncio.gather(
        *(client.post(f"/v1/quarantine/{held['inquiry_id']}/release") for _ in range(6))
    )

    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    [event] = await received(runtime)
    assert event["new_lead"] is True and event["inquiry_id"] == held["inquiry_id"]
    [lead] = await rows(runtime, Lead, Lead.id == UUID(event["lead_id"]))
    assert (lead.email, lead.first_name, lead.quarantined) == ("grace@example.com", "Ada", False)


async def test_a_discard_erases_the_inquiry_and_its_placeholder_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    held = await spam(client, "bot@example.com")
    real = (await client.post("/v1/leads", json={"email": "real@example.com"})).json()

    discarded = await client.delete(f"/v1/quarantine/{held['inquiry_id']}")
    again = await client.delete(f"/v1/quarantine/{held['inquiry_id']}")
    release = await client.post(f"/v1/quarantine/{held['inquiry_id']}/release")
    not_held = await client.delete(f"/v1/quarantine/{real['inquiry_id']}")
    not_held_release = await client.post(f"/v1/quarantine/{real['inquiry_id']}/release")

    assert (discarded.status_code, discarded.json()["status"]) == (200, "discarded")
    assert (again.status_code, again.json()["field"]) == (404, "inquiry_id")
    assert release.status_code == 404
    assert (not_held.status_code, not_held.json()["field"]) == (409, "inquiry_id")
    assert not_held_release.status_code == 409
    assert await count(runtime, Inquiry, Inquiry.id == UUID(held["inquiry_id"])) == 0
    assert await count(runtime, Lead, Lead.id == UUID(held["lead_id"])) == 0
    assert await count(runtime, LeadHistory, LeadHistory.lead_id == UUID(held["lead_id"])) == 0
    assert len(await received(runtime)) == 1  # the real lead's only


async def test_the_openapi_document_describes_the_review_endpoints(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    release = paths["/v1/quarantine/{inquiry_id}/release"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(release)
    assert "application/problem+json" in release["409"]["content"]
    assert {"get"} <= set(paths["/v1/quarantine"])
    assert {"delete"} <= set(paths["/v1/quarantine/{inquiry_id}"])


async def test_a_held_lead_takes_no_engagement_nor_routing_so_a_discard_always_works(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Found by the OpenAPI fuzzer: what other services record about a placeholder lead (an
    activity scoring counts, a routing assignment) held up its deletion, and a discard was 500."""
    real = (await client.post("/v1/leads", json={"email": "ada@example.com"})).json()
    held = await spam(client, "ada@example.com")
    placeholder = held["lead_id"]
    refused = {
        "activity": await client.post(f"/v1/leads/{placeholder}/activities", json={"type": "call"}),
        "outcome": await client.post(
            f"/v1/leads/{placeholder}/outcomes", json={"outcome": "accepted"}
        ),
        "reassign": await client.post(f"/v1/leads/{placeholder}/reassign", json={"reason": "x"}),
    }
    for name, answer in refused.items():
        assert answer.status_code == 409, (name, answer.text)
        assert "quarantined" in answer.json()["detail"]
    # By email, the person's lead is found, not the placeholder holding the same address.
    by_email = await client.post(
        "/v1/leads/by-email/ada@example.com/activities", json={"type": "call"}
    )
    assert by_email.status_code == 202 and by_email.json()["lead_id"] == real["lead_id"]

    discarded = await client.delete(f"/v1/quarantine/{held['inquiry_id']}")
    assert discarded.status_code == 200, discarded.text
    assert await count(runtime, Lead) == 1
