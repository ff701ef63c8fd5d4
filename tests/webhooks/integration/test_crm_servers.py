"""Contract tests: the requests our CRM builders make, sent with httpx to local HubSpot- and
Salesforce-shaped servers that check them strictly, are taken; our readers understand their
answers (a refused record keeps the others, a 429's wait, an expired Salesforce session)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.webhooks.crm import hubspot, salesforce
from services.webhooks.crm.config import HubSpotConfig, SalesforceConfig
from services.webhooks.crm.records import Batch
from tests.support.crm_servers import (
    HubSpotServer,
    SalesforceServer,
    contact_change,
    post_hubspot_webhook,
    qualified_event,
)
from tests.support.receiver import Receiver

TOKEN = "pat-eu1-test"
RITA, BAD_REP = "41629779", "99999"
HUBSPOT_PROPERTIES = {
    "email",
    "firstname",
    "lastname",
    "phone",
    "jobtitle",
    "company",
    "website",
    "country",
    "lifecyclestage",
    "hs_lead_status",
    "hubspot_owner_id",
    "leadflow_campaign",
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


@pytest.fixture
async def hubspot_crm() -> AsyncIterator[HubSpotServer]:
    async with HubSpotServer(
        token=TOKEN, known_properties=HUBSPOT_PROPERTIES, owners={RITA}
    ) as server:
        yield server


def hubspot_config(server: HubSpotServer, **settings: Any) -> HubSpotConfig:
    defaults = {
        "base_url": server.base_url,
        "owners": {"rita.rep@example.com": RITA, "bad.rep@example.com": BAD_REP},
        "properties": {"attribution.utm.campaign": "leadflow_campaign"},
    }
    return HubSpotConfig(**{**defaults, **settings})


def items(*documents: dict[str, Any]) -> list[tuple[UUID, dict[str, Any]]]:
    return [(uuid4(), document) for document in documents]


async def send(client: httpx.AsyncClient, batch: Batch, token: str) -> httpx.Response:
    headers = {**batch.headers, "Authorization": f"Bearer {token}"}
    return await client.request(batch.method, batch.url, json=batch.json, headers=headers)


async def test_hubspot_takes_the_batch_and_results_match(
    client: httpx.AsyncClient, hubspot_crm: HubSpotServer
) -> None:
    sent = items(qualified_event(), qualified_event({"qualification.stage": "sql"}))
    batch = hubspot.build_upsert(hubspot_config(hubspot_crm), sent)
    response = await send(client, batch, TOKEN)
    assert response.status_code == 200
    results = hubspot.parse_upsert(response.status_code, response.content, batch)
    for message, document in sent:
        email = document["data"]["contact"]["email"].lower()
        stored = hubspot_crm.contacts[email]
        assert results[message].ok and results[message].record_id == stored["id"]
        assert results[message].created is True
        assert stored["properties"]["hubspot_owner_id"] == RITA
        assert stored["properties"]["leadflow_campaign"] == "spring-launch"
    assert hubspot_crm.upserts == [batch.json]
    assert hubspot_crm.received[0].headers["authorization"] == f"Bearer {TOKEN}"
    again = await send(client, hubspot.build_upsert(hubspot_config(hubspot_crm), sent), TOKEN)
    assert all(r["new"] is False for r in again.json()["results"])


async def test_hubspot_refuses_one_record_and_keeps_the_others(
    client: httpx.AsyncClient, hubspot_crm: HubSpotServer
) -> None:
    refused = qualified_event({"owner.email": "bad.rep@example.com"})
    sent = items(qualified_event(), refused, qualified_event())
    batch = hubspot.build_upsert(hubspot_config(hubspot_crm), sent)
    response = await send(client, batch, TOKEN)
    assert response.status_code == 207 and response.json()["numErrors"] == 1
    results = hubspot.parse_upsert(response.status_code, response.content, batch)
    first, second, third = (results[message] for message, _ in sent)
    assert first.ok and third.ok and first.record_id != third.record_id
    assert not second.ok and not second.retry
    assert "VALIDATION_ERROR" in (second.error or "") and BAD_REP in (second.error or "")
    assert refused["data"]["contact"]["email"].lower() not in hubspot_crm.contacts


async def test_hubspot_names_an_unknown_property(
    client: httpx.AsyncClient, hubspot_crm: HubSpotServer
) -> None:
    config = hubspot_config(hubspot_crm, properties={"qualification.score": "lead_score"})
    sent = items(qualified_event(), qualified_event({"qualification.score": None}))
    batch = hubspot.build_upsert(config, sent)
    response = await send(client, batch, TOKEN)
    results = hubspot.parse_upsert(response.status_code, response.content, batch)
    scored, unscored = (results[message] for message, _ in sent)
    assert not scored.ok and "lead_score" in (scored.error or "") and not scored.retry
    assert unscored.ok


async def test_hubspot_results_matched_by_trace_id_too(client: httpx.AsyncClient) -> None:
    async with HubSpotServer(token=TOKEN, echo_trace=True) as server:
        sent = items(qualified_event(), qualified_event())
        batch = hubspot.build_upsert(hubspot_config(server), sent)
        response = await send(client, batch, TOKEN)
        assert {r["objectWriteTraceId"] for r in response.json()["results"]} == {
            str(m) for m, _ in sent
        }
        results = hubspot.parse_upsert(response.status_code, response.content, batch)
        assert all(results[m].ok for m, _ in sent)


@pytest.mark.parametrize(
    ("script", "wait"),
    [({"retry_after": 7}, 7.0), ({"interval_ms": 10_000}, 10.0), ({"policy": "DAILY"}, None)],
)
async def test_hubspot_429_wait_is_read(
    client: httpx.AsyncClient, hubspot_crm: HubSpotServer, script: dict[str, Any], wait: float
) -> None:
    hubspot_crm.rate_limit_next(1, **script)
    batch = hubspot.build_upsert(hubspot_config(hubspot_crm), items(qualified_event()))
    response = await send(client, batch, TOKEN)
    assert response.status_code == 429
    failure = hubspot.request_failed(response.status_code, response.headers, response.content)
    assert failure.retry and failure.wait_s == wait
    assert (await send(client, batch, TOKEN)).status_code == 200  # the limit has passed


async def test_hubspot_whole_request_failures(
    client: httpx.AsyncClient, hubspot_crm: HubSpotServer
) -> None:
    batch = hubspot.build_upsert(hubspot_config(hubspot_crm), items(qualified_event()))
    refused = await send(client, batch, "pat-revoked")
    failure = hubspot.request_failed(refused.status_code, refused.headers, refused.content)
    assert (
        refused.status_code == 401 and failure.retry and "INVALID_AUTHENTICATION" in failure.message
    )
    hubspot_crm.fail_next(1, 502)
    down = await send(client, batch, TOKEN)
    assert hubspot.request_failed(down.status_code, down.headers, down.content).retry
    malformed = Batch(batch.method, batch.url, {"inputs": batch.json["inputs"], "x": 1}, {}, [])
    bad = await send(client, malformed, TOKEN)
    failure = hubspot.request_failed(bad.status_code, bad.headers, bad.content)
    assert bad.status_code == 400 and not failure.retry and "VALIDATION_ERROR" in failure.message


async def test_a_signed_hubspot_webhook_verifies_as_received(client: httpx.AsyncClient) -> None:
    secret = "app-client-secret"
    events = [
        contact_change(
            501,
            "lifecyclestage",
            "salesqualifiedlead",
            event_id=1,
            occurred_at_ms=1_772_443_800_000,
        )
    ]
    async with Receiver() as receiver:
        url = receiver.url("/v1/crm/hubspot/4f2c/events?portal=1")
        await post_hubspot_webhook(client, url, secret, events)
        [got] = receiver.received
    uri = f"http://{got.headers['host']}{got.path}"
    stamp, signature = (
        got.headers["x-hubspot-request-timestamp"],
        got.headers["x-hubspot-signature-v3"],
    )
    now = datetime.fromtimestamp(int(stamp) / 1000, UTC)
    assert hubspot.verify_v3(secret, got.method, uri, got.body, stamp, signature, now)
    assert not hubspot.verify_v3("other", got.method, uri, got.body, stamp, signature, now)
    [outcome] = hubspot.inbound_outcomes(hubspot.parse_events(got.body), HubSpotConfig().inbound)
    assert (outcome.object_id, outcome.outcome) == ("501", "accepted")


# Salesforce

CLIENT_ID, CLIENT_SECRET = "3MVG9test", "sf-test-secret"
USER, QUEUE = "0055e000001AbCdAAK", "00G5e000000XyZ1AAK"
LEAD_FIELDS = {
    "Leadflow_Id__c",
    "Email",
    "FirstName",
    "LastName",
    "Phone",
    "Title",
    "Company",
    "Country",
    "LeadSource",
    "Status",
    "OwnerId",
}


@pytest.fixture
async def salesforce_org() -> AsyncIterator[SalesforceServer]:
    async with SalesforceServer(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        users={USER},
        queues={QUEUE},
        known_fields=LEAD_FIELDS,
    ) as server:
        yield server


def salesforce_config(server: SalesforceServer) -> SalesforceConfig:
    owners = {"rita.rep@example.com": USER, "bad.rep@example.com": "005000000000009"}
    return SalesforceConfig(
        login_url=server.base_url, client_id=CLIENT_ID, owners=owners, queues={"EMEA": QUEUE}
    )


async def token(client: httpx.AsyncClient, config: SalesforceConfig) -> salesforce.Token:
    url, form = salesforce.token_request(config, CLIENT_SECRET)
    response = await client.post(url, data=form)
    assert response.status_code == 200
    return salesforce.parse_token(response.content)


async def test_salesforce_token_then_upsert(
    client: httpx.AsyncClient, salesforce_org: SalesforceServer
) -> None:
    config = salesforce_config(salesforce_org)
    granted = await token(client, config)
    assert granted.instance_url == salesforce_org.base_url.rstrip("/")
    assert granted.issued_at is not None
    queued = qualified_event({"owner": None, "queue": {"team": "EMEA"}})
    anonymous = qualified_event({"contact": {}, "company": {}})  # consent kept it all out
    sent = items(qualified_event(), queued, anonymous)
    batch = salesforce.build_upsert(config, granted.instance_url, sent)
    response = await send(client, batch, granted.access_token)
    assert response.status_code == 200
    results = salesforce.parse_upsert(response.status_code, response.content, batch)
    for message, document in sent:
        stored = salesforce_org.leads[document["data"]["lead_id"]]
        assert results[message].ok and results[message].record_id == stored["Id"]
        assert results[message].created is True
    assert salesforce_org.leads[queued["data"]["lead_id"]]["OwnerId"] == QUEUE
    lead = salesforce_org.leads[anonymous["data"]["lead_id"]]
    assert (lead["LastName"], lead["Company"]) == ("[not provided]", "[not provided]")
    assert salesforce_org.received[-1].headers["sforce-auto-assign"] == "FALSE"
    again = await send(
        client, salesforce.build_upsert(config, granted.instance_url, sent), granted.access_token
    )
    assert [r["created"] for r in again.json()] == [False, False, False]


async def test_salesforce_one_failed_record_keeps_the_others(
    client: httpx.AsyncClient, salesforce_org: SalesforceServer
) -> None:
    config = salesforce_config(salesforce_org)
    granted = await token(client, config)
    locked = qualified_event()
    sent = items(qualified_event(), qualified_event({"owner.email": "bad.rep@example.com"}), locked)
    salesforce_org.lock_once(locked["data"]["lead_id"])
    batch = salesforce.build_upsert(config, granted.instance_url, sent)
    response = await send(client, batch, granted.access_token)
    results = salesforce.parse_upsert(response.status_code, response.content, batch)
    ok, bad_owner, busy = (results[message] for message, _ in sent)
    assert ok.ok
    assert not bad_owner.ok and not bad_owner.retry
    assert bad_owner.error == "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id (OwnerId)"
    assert not busy.ok and busy.retry and (busy.error or "").startswith("UNABLE_TO_LOCK_ROW")
    retried = salesforce.build_upsert(config, granted.instance_url, [sent[2]])
    response = await send(client, retried, granted.access_token)
    assert salesforce.parse_upsert(response.status_code, response.content, retried)[sent[2][0]].ok


async def test_an_expired_session_is_detected_and_a_new_token_works(
    client: httpx.AsyncClient, salesforce_org: SalesforceServer
) -> None:
    config = salesforce_config(salesforce_org)
    granted = await token(client, config)
    salesforce_org.expire_tokens()
    batch = salesforce.build_upsert(config, granted.instance_url, items(qualified_event()))
    expired = await send(client, batch, granted.access_token)
    assert salesforce.session_expired(expired.status_code, expired.content)
    renewed = await token(client, config)
    assert salesforce_org.tokens_issued == 2
    response = await send(client, batch, renewed.access_token)
    assert response.status_code == 200 and not salesforce.session_expired(200, response.content)


async def test_salesforce_refusals(
    client: httpx.AsyncClient, salesforce_org: SalesforceServer
) -> None:
    config = salesforce_config(salesforce_org)
    url, form = salesforce.token_request(config, "wrong-secret")
    refused = await client.post(url, data=form)
    assert refused.status_code == 400
    with pytest.raises(salesforce.TokenError, match="invalid_client"):
        salesforce.parse_token(refused.content)
    granted = await token(client, config)
    batch = salesforce.build_upsert(config, granted.instance_url, items(qualified_event()))
    salesforce_org.fail_next(1, 503, body=[{"message": "busy", "errorCode": "SERVER_UNAVAILABLE"}])
    down = await send(client, batch, granted.access_token)
    failure = salesforce.request_failed(down.status_code, down.headers, down.content)
    assert down.status_code == 503 and failure.retry and "SERVER_UNAVAILABLE" in failure.message
    unknown = SalesforceConfig(**{**config.model_dump(), "fields": {"custom.budget": "Budget__c"}})
    batch = salesforce.build_upsert(unknown, granted.instance_url, items(qualified_event()))
    bad = await send(client, batch, granted.access_token)
    failure = salesforce.request_failed(bad.status_code, bad.headers, bad.content)
    assert bad.status_code == 400 and not failure.retry and "INVALID_FIELD" in failure.message
