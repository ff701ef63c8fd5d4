"""Erasure, proven by a scan: a lead lives a whole life through every service on a real broker
(a form post with email, phone, names and company; scored to MQL, routed, handed off; an
activity, an outcome that promotes it to SQL; a Google Ads lead for the same person; a webhook
subscriber that received its events and echoed them back; the analytics facts), then
``DELETE /v1/leads/{id}``. Afterwards no row of any table — every column of every table in the
metadata, the outbox included — holds the person's email, phone (as posted, E.164, digits) or
names; the anonymous lead row stays.

Events already published on the topics cannot be taken back (Kafka keeps a topic's records
until its retention deletes them): the scan reads every Leadflow topic from the beginning and
asserts exactly which event types there still carry the person (``STILL_ON_TOPICS``, as
docs/intake.md "Erasure" says). One more type carrying personal data fails this test.

On both databases; ~20 s each here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from services.analytics.models import AnalyticsFact
from services.api import create_app
from services.processes import start_every_service
from services.routing.main import add_sample_team
from services.scoring.main import activate_sample_rules
from services.tables import metadata
from services.webhooks.models import PENDING, WebhookMessage
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.models import Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.intake import AUTH
from tests.support.receiver import Received, Receiver, Reply
from tests.support.sla import activate

GOOGLE_KEY = "google-key"
POLICY = """
name: erasure
policies:
  - id: mql
    first_response: {within: 4h}
"""
EMAIL = "Zenobia.Quillfeather@Difference-Engines.example"
PHONE = "+44 20 7946 0958"
FORM = {
    "email": EMAIL,
    "phone": PHONE,
    "first_name": "Zenobia",
    "last_name": "Quillfeather",
    "title": "Head of Research",
    "company": "Difference Engines Ltd",
    "website": "https://difference-engines.example",
    "country": "United Kingdom",
    "utm": {"source": "newsletter", "medium": "email", "campaign": "spring"},
    "consent": {"text": "Sales may contact me.", "flags": {"contact": True}},
    "custom": {"team_size": "11-50"},
}
PERSONAL = (
    EMAIL,  # as posted; the scan ignores case, so the normalised form too
    PHONE,
    "+442079460958",  # E.164
    "442079460958",
    "020 7946 0958",  # national
    "Zenobia",
    "Quillfeather",
)
KEPT_ANONYMOUS = ("Difference Engines Ltd",)
"""The company: personal on the lead (erased with it), scanned for too."""
STILL_ON_TOPICS = {
    # The handoff to CRMs: carries the contact by design, that is its purpose.
    "lead.qualified",
    # An activity's properties as its sender reported them (here a link with the email in it).
    "lead.activity",
}
"""Event types that, once published, still carry the person on the topics until the topics'
retention deletes them. Every other event names the lead by id only."""


async def test_after_erasure_no_table_and_no_retained_event_holds_the_person(
    db: Database, broker: EmbeddedBroker
) -> None:
    async with Receiver(echo) as receiver, leadflow(db, broker) as (settings, runtime, client):
        subscribed = await client.post(
            "/v1/subscriptions", json={"url": receiver.url(), "event_types": ["*"]}, headers=AUTH
        )
        assert subscribed.status_code == 201, subscribed.text
        lead_id = await live_a_whole_life(settings, runtime, client, receiver)
        lead = UUID(lead_id)
        before = await scan_tables(runtime)
        assert {table for table, _, _ in before} >= {
            "leads", "inquiries", "lead_activities", "lead_outcomes",
            "outbox", "webhook_messages", "webhook_attempts",
        }  # fmt: skip

        erased = await client.delete(f"/v1/leads/{lead_id}", headers=AUTH)
        assert erased.status_code == 200, erased.text
        await eventually(lambda: delivered(receiver, lead_id, "lead.erased"), within=60)
        await settled(runtime)

        assert await scan_tables(runtime) == []
        async with runtime.sessions() as session:
            row = (await session.execute(select(Lead).where(Lead.id == lead))).scalar_one()
            assert row.erased_at is not None and row.stage == "sql" and row.source == "web"
            assert row.owner_id is not None
            facts = select(func.count()).where(AnalyticsFact.lead_id == lead)
            assert (await session.scalar(facts) or 0) >= 3  # the funnel keeps its facts

        on_topics = await scan_topics(settings)
        assert on_topics == STILL_ON_TOPICS, on_topics


def echo(request: Received) -> Reply:
    """A receiver that answers with what it got: the answer is logged with the attempt."""
    return Reply(200, {"Content-Type": "application/json"}, request.body)


@asynccontextmanager
async def leadflow(
    db: Database, broker: EmbeddedBroker
) -> AsyncIterator[tuple[Settings, Runtime, httpx.AsyncClient]]:
    """Every service in one process, as ``leadflow dev`` runs them, on the test's database and
    the run's broker (topics of its own)."""
    settings = make_settings(
        db,
        broker,
        platforms={"google_ads_key": GOOGLE_KEY},
        webhooks={"allowed_networks": ["127.0.0.0/8"], "poll_interval_ms": 50},
    )
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        await add_sample_team(runtime)
        async with runtime.sessions.begin() as session:
            await activate(session, settings, text=POLICY)
        start_every_service(runtime)
        for assigned in runtime.consumers.values():
            await eventually(assigned.is_set, within=60)
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://leadflow") as client:
            yield settings, runtime, client
    finally:
        failed = [t for t in runtime.tasks if t.done() and not t.cancelled() and t.exception()]
        await runtime.close()
        assert not failed, f"background task died: {failed[0].exception()!r}"


async def live_a_whole_life(
    settings: Settings, runtime: Runtime, client: httpx.AsyncClient, receiver: Receiver
) -> str:
    posted = await client.post("/v1/leads", json=FORM, headers=AUTH)
    assert posted.status_code == 202, posted.text
    lead_id = str(posted.json()["lead_id"])
    await eventually(lambda: delivered(receiver, lead_id, "lead.qualified"), within=60)

    activity = {
        "type": "page_view",
        "properties": {"url": f"https://www.example.com/pricing?email={EMAIL}"},
    }
    outcome = {"outcome": "accepted", "properties": {"contact": EMAIL, "phone": PHONE}}
    for path, body in (("activities", activity), ("outcomes", outcome)):
        answer = await client.post(f"/v1/leads/{lead_id}/{path}", json=body, headers=AUTH)
        assert answer.status_code in (201, 202), answer.text
    ad = {
        "lead_id": "g-7001",
        "form_id": 42,
        "campaign_id": 7,
        "gcl_id": "gcl-1",
        "google_key": GOOGLE_KEY,
        "user_column_data": [
            {"column_id": "EMAIL", "string_value": EMAIL},
            {"column_id": "FULL_NAME", "string_value": "Zenobia Quillfeather"},
            {"column_id": "PHONE_NUMBER", "string_value": PHONE},
        ],
    }
    from_google = await client.post("/v1/ingest/google-ads", json=ad)
    assert from_google.status_code == 200, from_google.text
    assert str(from_google.json()["lead_id"]) == lead_id  # the same person, the same lead

    async def promoted() -> bool:  # accepted, the sample rules make it an SQL: handed off again
        handoffs = delivered(receiver, lead_id, "lead.qualified")
        return any(e["data"]["handoff"] == "promoted" for e in handoffs)

    await eventually(promoted, within=60)
    await settled(runtime)
    return lead_id


def delivered(receiver: Receiver, lead_id: str, event_type: str) -> list[dict[str, Any]]:
    events = [orjson.loads(request.body) for request in receiver.received]
    return [e for e in events if e.get("type") == event_type and e.get("subject") == lead_id]


async def settled(runtime: Runtime) -> None:
    """Every event published and every webhook message settled, twice in a row a moment apart
    (a consumer may still be applying what it read)."""

    async def quiet() -> bool:
        async with runtime.sessions() as session:
            unpublished = select(func.count()).where(OutboxMessage.published_at.is_(None))
            pending = select(func.count()).where(WebhookMessage.status == PENDING)
            return not (await session.scalar(unpublished) or await session.scalar(pending))

    for _ in range(2):
        await eventually(quiet, within=60)
        await asyncio.sleep(0.5)  # not synchronisation: a second look after a lull


async def scan_tables(runtime: Runtime) -> list[tuple[str, str, str]]:
    """(table, column, what was found) for every value of every column of every table in the
    metadata that holds a piece of the person, ignoring case."""
    found = []
    async with runtime.sessions() as session:
        for table in metadata.sorted_tables:
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    text = as_text(value).casefold()
                    for piece in PERSONAL + KEPT_ANONYMOUS:
                        if piece.casefold() in text:
                            found.append((table.name, column, piece))
    return found


def as_text(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return json.dumps(value, default=str, ensure_ascii=False)


async def scan_topics(settings: Settings) -> set[str]:
    """The types of the events, on every Leadflow topic from its beginning, that hold a piece of
    the person."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = []
        for topic in settings.topics.all():
            await consumer._client.force_metadata_update()  # noqa: SLF001
            for partition in consumer.partitions_for_topic(topic) or ():
                partitions.append(TopicPartition(topic, partition))
        assert {p.topic for p in partitions} >= {
            settings.topics.intake, settings.topics.lifecycle, settings.topics.sla,
        }  # fmt: skip
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        types: set[str] = set()
        read = 0
        while [p for p, end in ends.items() if await consumer.position(p) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    read += 1
                    text = (record.value or b"").decode().casefold()
                    if any(piece.casefold() in text for piece in PERSONAL):
                        types.add(orjson.loads(record.value or b"{}").get("type"))
        assert read >= 10, f"only {read} events on the topics"
        return types
    finally:
        await consumer.stop()
