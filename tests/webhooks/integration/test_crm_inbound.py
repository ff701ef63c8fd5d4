"""HubSpot's webhooks back into Leadflow (``POST /v1/crm/hubspot/{id}/events``) through the full
public app, on both databases: a real lead taken in by intake, a HubSpot subscription holding the
app's secret, the lead linked to contact 1001 as the CRM sync links it. Signed changes become
outcomes (intake) and reassignments (routing); anything unverified is refused as a problem."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from sqlalchemy import select

from services.api import create_app
from services.intake.models import LeadOutcomeRow
from services.webhooks.crm import links
from shared.models import Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support import routing
from tests.support.common import Database, make_settings
from tests.support.crm_servers import contact_change, post_hubspot_webhook, sign_hubspot_v3
from tests.support.webhooks import FAST

AUTH = {"Authorization": "Bearer sk_test"}
BASE = "http://leadflow"
PUBLIC = "https://leadflow.example.com"
APP_SECRET = f"app-{uuid4().hex}"
RECORD, STRANGER = 1001, 2002
ANA, BEA = "41629779", "41629780"


@dataclass
class Setup:
    client: httpx.AsyncClient
    runtime: Runtime
    subscription_id: str
    lead_id: UUID

    @property
    def url(self) -> str:
        return f"{BASE}/v1/crm/hubspot/{self.subscription_id}/events"

    async def post(self, *events: dict[str, Any], **options: Any) -> httpx.Response:
        return await post_hubspot_webhook(
            self.client, self.url, APP_SECRET, list(events), **options
        )


_events = iter(range(10**6, 10**7))


def change(
    name: str,
    value: str,
    *,
    record: int = RECORD,
    event_id: int | None = None,
    occurred_at_ms: int | None = None,
) -> dict:
    return contact_change(
        record,
        name,
        value,
        event_id=event_id if event_id is not None else next(_events),
        occurred_at_ms=occurred_at_ms or int(time.time() * 1000),
    )


async def hubspot_subscription(
    client: httpx.AsyncClient, credentials: dict[str, str] | None = None
) -> str:
    body = {
        "kind": "hubspot",
        "hubspot": {
            "base_url": "http://127.0.0.1:9",
            "owners": {"ana@example.com": ANA, "Bea@Example.com": BEA},
        },
        "credentials": credentials or {"token": "pat-eu1-test", "app_secret": APP_SECRET},
    }
    created = await client.post("/v1/subscriptions", json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]  # type: ignore[no-any-return]


async def take_in_lead(client: httpx.AsyncClient) -> UUID:
    email = f"ada.{uuid4().hex[:8]}@example.com"
    response = await client.post("/v1/leads", json={"email": email, "first_name": "Ada"})
    assert response.status_code == 202, response.text
    return UUID(response.json()["lead_id"])


async def link(runtime: Runtime, subscription_id: str, lead_id: UUID, record: int) -> None:
    async with runtime.sessions.begin() as session:
        await links.remember(
            session, UUID(subscription_id), {str(lead_id): str(record)}, now=datetime.now(UTC)
        )


@asynccontextmanager
async def linked_lead(db: Database, **overrides: Any) -> AsyncIterator[Setup]:
    """The public app over its own runtime; a lead taken in; a HubSpot subscription that has
    upserted it as contact 1001."""
    runtime = Runtime.create(make_settings(db, webhooks=FAST, **overrides))
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=AUTH) as client:
            subscription_id = await hubspot_subscription(client)
            lead_id = await take_in_lead(client)
            await link(runtime, subscription_id, lead_id, RECORD)
            yield Setup(client, runtime, subscription_id, lead_id)
    finally:
        await runtime.close()  # the intake writers it started, and its engine


@pytest.fixture
async def hub(db: Database) -> AsyncIterator[Setup]:
    async with linked_lead(db) as setup:
        yield setup


async def outcomes(runtime: Runtime, lead_id: UUID) -> list[LeadOutcomeRow]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(LeadOutcomeRow)
            .where(LeadOutcomeRow.lead_id == lead_id)
            .order_by(LeadOutcomeRow.received_at)
        )
        return list(rows)


async def staged(runtime: Runtime, kind: str) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.type == kind).order_by(OutboxMessage.seq)
        )
        return [json.loads(row.payload) for row in rows]


def answer(response: httpx.Response, **expected: int) -> None:
    assert response.status_code == 200, response.text
    got = response.json()
    assert {k: got[k] for k in expected} == expected, got


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()  # type: ignore[no-any-return]


async def test_a_sales_qualified_contact_is_an_accepted_outcome_recorded_once(hub: Setup) -> None:
    event = change("lifecyclestage", "salesqualifiedlead")

    first = await hub.post(event)

    answer(first, received=1, recorded=1, repeats=0, unknown=0, ignored=0, reassigned=0)
    [row] = await outcomes(hub.runtime, hub.lead_id)
    assert (row.outcome, row.reason, row.crm) == ("accepted", None, "hubspot")
    [staged_event] = await staged(hub.runtime, "lead.outcome")
    assert staged_event["subject"] == str(hub.lead_id)
    assert staged_event["data"]["outcome"] == "accepted"
    assert staged_event["data"]["crm"] == "hubspot"
    assert str(row.event_id) == staged_event["id"]

    again = await hub.post(event)  # HubSpot delivers again what it thinks was not answered

    answer(again, received=1, recorded=0, repeats=1)
    assert len(await outcomes(hub.runtime, hub.lead_id)) == 1
    assert len(await staged(hub.runtime, "lead.outcome")) == 1


async def test_an_unqualified_lead_status_is_a_rejection_with_its_reason(hub: Setup) -> None:
    response = await hub.post(change("hs_lead_status", "UNQUALIFIED"))

    answer(response, received=1, recorded=1)
    [row] = await outcomes(hub.runtime, hub.lead_id)
    assert (row.outcome, row.reason) == ("rejected", "unqualified")
    [event] = await staged(hub.runtime, "lead.outcome")
    assert (event["data"]["outcome"], event["data"]["reason"]) == ("rejected", "unqualified")


async def test_unknown_contacts_and_unmapped_changes_record_nothing(hub: Setup) -> None:
    response = await hub.post(
        change("lifecyclestage", "salesqualifiedlead", record=STRANGER),
        change("firstname", "Ada"),
        change("lifecyclestage", "lead"),
        {**change("name", "Initech"), "subscriptionType": "company.propertyChange"},
    )

    answer(response, received=4, recorded=0, repeats=0, unknown=1, ignored=3, reassigned=0)
    assert await outcomes(hub.runtime, hub.lead_id) == []
    assert await staged(hub.runtime, "lead.outcome") == []


async def test_a_change_intake_refuses_is_counted_and_the_rest_of_the_batch_recorded(
    hub: Setup,
) -> None:
    """One change intake refuses (dated an hour ahead) must not cost the batch: answered 2xx
    (else HubSpot retries it for days) and the other changes kept."""
    ahead = int((time.time() + 3600) * 1000)
    future = change("lifecyclestage", "salesqualifiedlead", occurred_at_ms=ahead)
    response = await hub.post(future, change("hs_lead_status", "IN_PROGRESS"))

    assert response.status_code == 200, response.text
    assert response.json()["received"] == 2 and response.json()["refused"] == 1
    assert [r.outcome for r in await outcomes(hub.runtime, hub.lead_id)] == ["responded"]


def signed_headers(body: bytes, url: str, *, secret: str = APP_SECRET, at_ms: int | None = None
                   ) -> dict[str, str]:  # fmt: skip
    timestamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, timestamp),
    }


async def test_unverified_requests_are_refused_as_problems(hub: Setup) -> None:
    body = orjson.dumps([change("lifecyclestage", "salesqualifiedlead")])

    wrong_secret = await hub.client.post(
        hub.url, content=body, headers=signed_headers(body, hub.url, secret="not-the-secret")
    )
    stale = await hub.client.post(
        hub.url,
        content=body,
        headers=signed_headers(body, hub.url, at_ms=int((time.time() - 6 * 60) * 1000)),
    )
    tampered = await hub.client.post(
        hub.url, content=body.replace(b"salesqualifiedlead", b"customer"),
        headers=signed_headers(body, hub.url),
    )  # fmt: skip
    unsigned = await hub.client.post(hub.url, content=body)
    no_signature = await hub.client.post(
        hub.url,
        content=body,
        headers={"X-HubSpot-Request-Timestamp": str(int(time.time() * 1000))},
    )

    for refused in (wrong_secret, stale, tampered):
        problem = assert_problem(refused, 401)
        assert problem["field"] == "X-HubSpot-Signature-v3"
    for missing in (unsigned, no_signature):
        assert_problem(missing, 401)  # a missing credential, not a malformed request
    assert no_signature.json()["field"] == "X-HubSpot-Signature-v3"
    assert await outcomes(hub.runtime, hub.lead_id) == []


async def test_a_body_that_is_not_a_batch_of_events_is_a_bad_request(hub: Setup) -> None:
    for body in (b'{"eventId": 1}', b"not json", b'[{"eventId": "x"}]'):
        response = await hub.client.post(
            hub.url, content=body, headers=signed_headers(body, hub.url)
        )
        problem = assert_problem(response, 400)
        assert "not a HubSpot webhook batch" in problem["detail"], body
    assert await outcomes(hub.runtime, hub.lead_id) == []


async def test_without_an_app_secret_or_a_hubspot_subscription_nothing_is_verified(
    hub: Setup,
) -> None:
    secretless = await hubspot_subscription(hub.client, {"token": "pat-eu1-test"})
    await link(hub.runtime, secretless, hub.lead_id, RECORD)
    event = change("lifecyclestage", "salesqualifiedlead")
    url = f"{BASE}/v1/crm/hubspot/{secretless}/events"

    no_secret = await post_hubspot_webhook(hub.client, url, APP_SECRET, [event])
    no_secret_empty = await post_hubspot_webhook(hub.client, url, "", [event])
    unknown = await post_hubspot_webhook(
        hub.client, f"{BASE}/v1/crm/hubspot/{uuid4()}/events", APP_SECRET, [event]
    )
    webhook = await hub.client.post(
        "/v1/subscriptions", json={"url": "http://127.0.0.1:9/", "event_types": ["*"]}
    )
    not_hubspot = await post_hubspot_webhook(
        hub.client, f"{BASE}/v1/crm/hubspot/{webhook.json()['id']}/events", APP_SECRET, [event]
    )

    assert assert_problem(no_secret, 401)["field"] == "credentials.app_secret"
    assert assert_problem(no_secret_empty, 401)["field"] == "credentials.app_secret"
    assert assert_problem(unknown, 404)["field"] == "subscription_id"
    assert assert_problem(not_hubspot, 404)["field"] == "subscription_id"
    assert await outcomes(hub.runtime, hub.lead_id) == []


async def owner_of(runtime: Runtime, lead_id: UUID) -> UUID | None:
    async with runtime.sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        return lead.owner_id


async def test_an_owner_set_in_hubspot_becomes_the_leads_owner(hub: Setup) -> None:
    async with hub.runtime.sessions.begin() as session:
        await routing.team(session, "emea")
        ana = await routing.rep(session, "ana@example.com", "emea")
        bea = await routing.rep(session, "bea@example.com", "emea")
    given = await hub.client.post(
        f"/v1/leads/{hub.lead_id}/reassign",
        json={"reason": "first owner", "owner_email": "ana@example.com"},
    )
    assert given.status_code == 200, given.text
    assert await owner_of(hub.runtime, hub.lead_id) == ana
    assert len(await staged(hub.runtime, "lead.reassigned")) == 1

    moved = await hub.post(change("hubspot_owner_id", BEA))

    answer(moved, received=1, reassigned=1, recorded=0, unknown=0, ignored=0)
    assert await owner_of(hub.runtime, hub.lead_id) == bea
    reassigned = await staged(hub.runtime, "lead.reassigned")
    assert len(reassigned) == 2
    assert reassigned[-1]["data"]["owner_id"] == str(bea)
    assert reassigned[-1]["data"]["previous_owner_id"] == str(ana)

    again = await hub.post(change("hubspot_owner_id", BEA))
    unmapped = await hub.post(change("hubspot_owner_id", "99999"))

    answer(again, received=1, reassigned=0, unknown=0)
    answer(unmapped, received=1, reassigned=0, unknown=1)
    assert await owner_of(hub.runtime, hub.lead_id) == bea
    assert len(await staged(hub.runtime, "lead.reassigned")) == 2


async def test_the_signature_may_be_over_the_public_url(db: Database) -> None:
    """Behind a proxy HubSpot signs the URL it called (``http.public_url``), not the one the
    app receives."""
    async with linked_lead(db, http={"public_url": f"{PUBLIC}/"}) as setup:
        path = f"/v1/crm/hubspot/{setup.subscription_id}/events"
        body = orjson.dumps([change("lifecyclestage", "salesqualifiedlead")])

        def signed_for(url: str) -> dict[str, str]:
            return signed_headers(body, url)

        elsewhere = await setup.client.post(
            path, content=body, headers=signed_for(f"https://evil.example.com{path}")
        )
        public = await setup.client.post(path, content=body, headers=signed_for(PUBLIC + path))
        received = await setup.client.post(path, content=body, headers=signed_for(BASE + path))
        recorded = [r.outcome for r in await outcomes(setup.runtime, setup.lead_id)]

    assert_problem(elsewhere, 401)
    answer(public, received=1, recorded=1)
    answer(received, received=1, recorded=0, repeats=1)  # as received: also verified
    assert recorded == ["accepted"]
