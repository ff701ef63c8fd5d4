"""The CRM sync against local HubSpot- and Salesforce-shaped servers: batches, per-record results,
rate limits, expired sessions, ordering per lead, consent, and the record ids kept for the way
back. Both databases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from services.webhooks import store
from services.webhooks.crm.links import leads_of
from services.webhooks.crm.sync import CONCURRENT, CrmSync
from services.webhooks.models import CrmLink, Subscription
from services.webhooks.queue import claim
from services.webhooks.recording import record_many
from services.webhooks.schemas import SubscriptionIn
from services.webhooks.sending import make_client
from services.webhooks.settings import WebhooksConfig
from services.webhooks.settle import Outcome, Settled, settle_batch
from shared.config import Settings
from shared.events import CloudEvent, decode
from tests.support.common import Database, eventually
from tests.support.crm_servers import HubSpotServer, SalesforceServer, qualified_event
from tests.support.receiver import Receiver
from tests.support.webhooks import (
    attempts,
    dispatching,
    emit,
    messages,
    subscribe,
    webhook_settings,
)
from tests.support.webhooks import subscription as store_subscription

HUBSPOT_TOKEN = "pat-test-token"
SF_SECRET = "sf-test-secret"


def settings_for(db: Database, **webhooks: Any) -> Settings:
    return webhook_settings(db, crm_linger_ms=50, **webhooks)


def event(**changes: Any) -> CloudEvent:
    """A ``lead.qualified`` whose lead agreed to be contacted (unless ``changes`` say not)."""
    return decode(orjson.dumps(qualified_event({"consent.flags": {"contact": True}, **changes})))


async def hubspot(db: Database, settings: Settings, server: HubSpotServer, **config: Any) -> UUID:
    body = SubscriptionIn(
        kind="hubspot",
        hubspot={"base_url": server.base_url, **config},
        credentials={"token": HUBSPOT_TOKEN},
    )
    async with db.sessions.begin() as session:
        created = await store.create(
            session, body, settings=settings.webhooks, now=datetime.now(UTC)
        )
    return created.id


async def salesforce(
    db: Database, settings: Settings, server: SalesforceServer, **config: Any
) -> UUID:
    body = SubscriptionIn(
        kind="salesforce",
        salesforce={"login_url": server.base_url, "client_id": server.client_id, **config},
        credentials={"client_secret": SF_SECRET},
    )
    async with db.sessions.begin() as session:
        created = await store.create(
            session, body, settings=settings.webhooks, now=datetime.now(UTC)
        )
    return created.id


@asynccontextmanager
async def syncing(db: Database, settings: Settings) -> AsyncIterator[CrmSync]:
    assert isinstance(settings, WebhooksConfig)
    sync = CrmSync(db.sessions, settings)
    task = asyncio.create_task(sync.run())
    try:
        yield sync
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception():
            raise AssertionError(f"crm sync died: {task.exception()!r}")


async def settled(db: Database, subscription: UUID, count: int) -> list[Any]:
    async def done() -> list[Any] | None:
        rows = await messages(db, subscription)
        finished = [m for m in rows if m.status != "pending"]
        return rows if len(rows) == count and len(finished) == count else None

    result: list[Any] = await eventually(done, within=20)
    return result


async def test_hubspot_gets_one_batch_with_owners_stages_and_mapped_properties(
    db: Database,
) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(
            db,
            settings,
            server,
            owners={"rita.rep@example.com": "41629779"},
            properties={
                "attribution.utm.campaign": "leadflow_campaign",
                "qualification.score": "leadflow_score",
            },
        )
        events = [event() for _ in range(3)]
        await emit_many(db, settings, events)
        async with syncing(db, settings):
            rows = await settled(db, subscription, 3)
    assert [m.status for m in rows] == ["delivered"] * 3
    assert len(server.upserts) == 1, "three leads, one request"
    inputs = server.upserts[0]["inputs"]
    sent = {i["id"]: i["properties"] for i in inputs}
    for one in events:
        data = one.data.model_dump(mode="json")
        properties = sent[data["contact"]["email"]]
        assert properties["hubspot_owner_id"] == "41629779"
        assert properties["lifecyclestage"] == "marketingqualifiedlead"
        assert properties["hs_lead_status"] == "NEW"
        assert properties["firstname"] == "Ana" and properties["jobtitle"] == "Head of Operations"
        assert properties["leadflow_campaign"] == "spring-launch"
        assert properties["leadflow_score"] == "72"
    assert all(i["idProperty"] == "email" for i in inputs)
    assert server.received[0].headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}"
    async with db.sessions() as session:
        links = list(await session.scalars(select(CrmLink)))
        ids = {str(e.data.lead_id) for e in events}
        assert {link.lead_id for link in links} == ids
        by_record = await leads_of(session, subscription, [link.record_id for link in links])
    assert set(by_record.values()) == ids
    logged = await attempts(db, subscription)
    assert [a.outcome for a in logged] == ["delivered"] * 3


async def test_a_record_hubspot_refuses_is_not_retried_and_the_others_are_delivered(
    db: Database,
) -> None:
    settings = settings_for(db)
    async with HubSpotServer(owners={"41629779"}) as server:
        subscription = await hubspot(
            db,
            settings,
            server,
            owners={"rita.rep@example.com": "41629779", "bo.rep@example.com": "999"},
        )
        good = event()
        bad = event(**{"owner.email": "bo.rep@example.com"})
        await emit_many(db, settings, [good, bad])
        async with syncing(db, settings):
            rows = await settled(db, subscription, 2)
    by_lead = {m.lead_id: m for m in rows}
    assert by_lead[str(good.data.lead_id)].status == "delivered"
    refused = by_lead[str(bad.data.lead_id)]
    assert refused.status == "exhausted" and refused.attempts == 1
    assert refused.last_error and "999" in refused.last_error
    assert len(server.upserts) == 1
    outcomes = {a.lead_id: a.outcome for a in await attempts(db, subscription)}
    assert outcomes[str(bad.data.lead_id)] == "rejected"


async def test_a_rate_limited_batch_waits_as_told_then_goes(db: Database) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        server.rate_limit_next(retry_after=1)
        await emit_many(db, settings, [event(), event()])
        async with syncing(db, settings):
            rows = await eventually(lambda: _all_delivered(db, subscription, 2), within=20)
    assert [m.status for m in rows] == ["delivered", "delivered"]
    assert len(server.received) == 2, "one refused request, one accepted"
    gap = server.received[1].at - server.received[0].at
    assert gap >= 0.9, f"retried {gap:.2f}s later, Retry-After said 1 s"
    assert all(m.attempts == 2 for m in rows)
    logged = await attempts(db, subscription)
    assert [a.outcome for a in logged[:2]] == ["slow_down", "slow_down"]


async def test_a_server_error_is_retried_on_the_schedule(db: Database) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        server.fail_next(1, 503)
        await emit(db, settings, event())
        async with syncing(db, settings):
            rows = await eventually(lambda: _all_delivered(db, subscription, 1), within=20)
    assert rows[0].attempts == 2 and len(server.upserts) == 2
    logged = await attempts(db, subscription)
    assert [(a.outcome, a.status_code) for a in logged] == [("retry", 503), ("delivered", 200)]


async def test_one_leads_handoffs_reach_the_crm_in_order(db: Database) -> None:
    """A lead qualified then reassigned: the second upsert follows the first, never with it."""
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(
            db,
            settings,
            server,
            owners={"rita.rep@example.com": "1", "bo.rep@example.com": "2"},
        )
        first = event()
        lead = str(first.data.lead_id)
        moved = {"lead_id": lead, "handoff": "reassigned", "owner.email": "bo.rep@example.com"}
        second = event(**moved, **{"contact.email": first.data.contact.email})
        second = second.model_copy(update={"subject": lead})
        await emit(db, settings, first, second)
        async with syncing(db, settings):
            await settled(db, subscription, 2)
    assert len(server.upserts) == 2, "one lead's messages never share a batch"
    owners = [u["inputs"][0]["properties"]["hubspot_owner_id"] for u in server.upserts]
    assert owners == ["1", "2"]
    assert server.contacts[first.data.contact.email or ""]["properties"]["hubspot_owner_id"] == "2"


async def test_250_leads_go_in_three_batches(db: Database) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        await emit_many(db, settings, [event() for _ in range(250)])
        async with syncing(db, settings):
            await settled(db, subscription, 250)
    assert sorted(len(u["inputs"]) for u in server.upserts) == [50, 100, 100]


async def emit_many(db: Database, settings: Settings, events: list[CloudEvent]) -> None:
    """What the consumer does with a batch: one transaction, every message due at one instant."""
    async with db.sessions.begin() as session:
        await record_many(session, events, settings=settings, now=datetime.now(UTC))


async def test_without_consent_hubspot_gets_no_email_and_the_record_says_why(db: Database) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server, SalesforceServer() as org:
        to_hubspot = await hubspot(db, settings, server)
        to_salesforce = await salesforce(db, settings, org)
        refused = event(**{"consent.flags": {"contact": False}})
        await emit(db, settings, refused)
        async with syncing(db, settings):
            hub = await settled(db, to_hubspot, 1)
            sf = await settled(db, to_salesforce, 1)
    assert server.upserts == [], "no email to upsert by: nothing sent"
    assert hub[0].status == "exhausted" and "email" in (hub[0].last_error or "")
    assert sf[0].status == "delivered"
    record = org.upserts[0]["records"][0]
    assert "Email" not in record and "Phone" not in record and "FirstName" not in record
    assert record["LastName"] == "[not provided]"
    assert record["Leadflow_Id__c"] == str(refused.data.lead_id)
    assert record["Company"] == "Northwind GmbH"


@pytest.mark.parametrize("flags", [{"contact": True}, {"consentToProcess": True}])
async def test_with_consent_the_personal_fields_reach_the_crm(
    db: Database, flags: dict[str, bool]
) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        given = event(**{"consent.flags": flags})
        await emit(db, settings, given)
        async with syncing(db, settings):
            await settled(db, subscription, 1)
    sent = server.upserts[0]["inputs"][0]
    assert sent["id"] == given.data.contact.email
    assert sent["properties"]["phone"] == "+4930123456"


async def test_salesforce_token_once_renewed_on_expiry_and_rows_retried_when_locked(
    db: Database,
) -> None:
    settings = settings_for(db)
    async with SalesforceServer(users={"0055e000001AbCdAAK"}) as org:
        subscription = await salesforce(
            db, settings, org, owners={"rita.rep@example.com": "0055e000001AbCdAAK"}
        )
        first = event()
        await emit(db, settings, first)
        async with syncing(db, settings) as sync:
            await settled(db, subscription, 1)
            assert org.tokens_issued == 1
            org.expire_tokens()
            second, third = event(), event()
            org.lock_once(str(third.data.lead_id))
            await emit_many(db, settings, [second, third])
            sync.recorded({subscription: 2})
            rows = await eventually(lambda: _all_delivered(db, subscription, 3), within=20)
    assert org.tokens_issued == 2, "a new token when the session expired"
    by_lead = {m.lead_id: m for m in rows}
    assert by_lead[str(second.data.lead_id)].attempts == 1, "renewed and resent in one attempt"
    assert by_lead[str(third.data.lead_id)].attempts == 2, "a locked row goes again"
    lead = org.leads[str(first.data.lead_id)]
    assert lead["OwnerId"] == "0055e000001AbCdAAK" and lead["Status"] == "Open - Not Contacted"
    assert lead["LastName"] == "Buyer" and lead["Company"] == "Northwind GmbH"


async def _all_delivered(db: Database, subscription: UUID, count: int) -> list[Any] | None:
    rows = await messages(db, subscription)
    ok = len(rows) == count and all(m.status == "delivered" for m in rows)
    return rows if ok else None


async def test_salesforce_refuses_an_unknown_owner_for_that_record_only(db: Database) -> None:
    settings = settings_for(db)
    async with SalesforceServer(users={"0055e000001AbCdAAK"}) as org:
        subscription = await salesforce(
            db,
            settings,
            org,
            owners={
                "rita.rep@example.com": "0055e000001AbCdAAK",
                "bo.rep@example.com": "005000000000000AAA",
            },
        )
        good, bad = event(), event(**{"owner.email": "bo.rep@example.com"})
        await emit_many(db, settings, [good, bad])
        async with syncing(db, settings):
            rows = await settled(db, subscription, 2)
    by_lead = {m.lead_id: m for m in rows}
    assert by_lead[str(good.data.lead_id)].status == "delivered"
    refused = by_lead[str(bad.data.lead_id)]
    assert refused.status == "exhausted" and "INVALID_CROSS_REFERENCE_KEY" in (
        refused.last_error or ""
    )


async def test_a_plain_webhook_dispatcher_never_claims_crm_messages(db: Database) -> None:
    settings = settings_for(db)
    async with HubSpotServer() as server, Receiver() as receiver:
        subscription = await hubspot(db, settings, server)
        plain = await subscribe(db, settings, receiver.url(), ["lead.qualified"])
        await emit(db, settings, event())
        async with dispatching(db, settings):
            await eventually(lambda: _all_delivered(db, plain.id, 1), within=10)
        rows = await messages(db, subscription)
    assert rows[0].status == "pending" and rows[0].attempts == 0
    assert server.received == []


async def test_an_announced_subscription_that_is_gone_is_forgotten(db: Database) -> None:
    """Else its batch would be due for ever and the sync would spin on it."""
    settings = settings_for(db)
    assert isinstance(settings, WebhooksConfig)
    sync = CrmSync(db.sessions, settings)
    sync.recorded({uuid4(): 3})
    async with make_client(settings.webhooks) as client:
        await sync._round(client)  # noqa: SLF001 - one round, no loop
    assert sync.announced == {} and sync.first_at == {}


async def test_a_subscription_with_every_request_in_flight_waits_to_be_woken(db: Database) -> None:
    """Its lingering batch cannot go until a request ends (which wakes the sync): no spinning."""
    settings = settings_for(db, poll_interval_ms=60_000)
    assert isinstance(settings, WebhooksConfig)
    sync = CrmSync(db.sessions, settings)
    busy = uuid4()
    sync.recorded({busy: 1})
    sync.first_at[busy] -= 10  # lingered long ago
    sync.sending[busy] = CONCURRENT
    sync._polled = time.monotonic()  # noqa: SLF001
    sync.wakeup.clear()
    idle = asyncio.create_task(sync._idle())  # noqa: SLF001
    done, _ = await asyncio.wait({idle}, timeout=0.2)
    assert not done, "it returned at once: the sync would spin"
    sync.wakeup.set()
    await asyncio.wait_for(idle, 5)


async def test_a_success_inside_a_rate_limit_pause_does_not_lift_it(db: Database) -> None:
    """Two requests in flight, the second told to wait (429, Retry-After): the first's success
    must not make the waiting messages due at once."""
    settings = settings_for(db)
    assert isinstance(settings, WebhooksConfig)
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        await emit_many(db, settings, [event(), event()])
        now = datetime.now(UTC)
        async with db.sessions.begin() as session:
            first, second = await claim(
                session, now=now, limit=2, lease=timedelta(minutes=1), in_flight={},
                per_endpoint=2, threshold=1000, endpoints=[subscription], kind="hubspot",
            )  # fmt: skip
        limited = Outcome(attempted_at=now, status=429, latency_ms=1.0, retry_after="60")
        answered = Outcome(attempted_at=now, status=200, latency_ms=1.0)
        for outcome, message in ((limited, second), (answered, first)):
            verdict = outcome.verdict
            async with db.sessions.begin() as session:
                await settle_batch(
                    session, outcome, [Settled(message, verdict)], settings=settings,
                    now=now, rand=lambda: 0.5,
                )  # fmt: skip
        rows = {m.id: m for m in await messages(db, subscription)}
        paused = (await store_subscription(db, subscription)).paused_until
    assert rows[first.id].status == "delivered"
    assert rows[second.id].status == "pending"
    assert rows[second.id].due_at >= now + timedelta(seconds=59)
    assert paused is not None and paused >= now + timedelta(seconds=59)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_refused_record_counts_as_exhausted_once_settled(db: Database) -> None:
    settings = settings_for(db)
    rejected = _sample("leadflow_webhook_messages_exhausted_total", reason="rejected")
    async with HubSpotServer(owners={"41629779"}) as server:
        subscription = await hubspot(db, settings, server, owners={"bo.rep@example.com": "999"})
        await emit_many(db, settings, [event(), event(**{"owner.email": "bo.rep@example.com"})])
        async with syncing(db, settings):
            await settled(db, subscription, 2)
    after = _sample("leadflow_webhook_messages_exhausted_total", reason="rejected")
    assert after == rejected + 1


async def test_a_crm_failing_for_days_counts_as_disabled_and_its_message_as_exhausted(
    db: Database,
) -> None:
    settings = settings_for(db, retry_schedule_s=[0], disable_after_hours=72)
    disabled = _sample("leadflow_webhook_endpoints_disabled_total")
    spent = _sample("leadflow_webhook_messages_exhausted_total", reason="retries_spent")
    async with HubSpotServer() as server:
        subscription = await hubspot(db, settings, server)
        async with db.sessions.begin() as session:
            await session.execute(
                update(Subscription)
                .where(Subscription.id == subscription)
                .values(failing_since=datetime.now(UTC) - timedelta(days=4), consecutive_failures=9)
            )
        server.fail_next(1, 503)
        await emit(db, settings, event())
        async with syncing(db, settings):
            [row] = await settled(db, subscription, 1)
    assert row.status == "exhausted"
    assert not (await store_subscription(db, subscription)).enabled
    assert _sample("leadflow_webhook_endpoints_disabled_total") == disabled + 1
    assert _sample("leadflow_webhook_messages_exhausted_total", reason="retries_spent") == spent + 1
