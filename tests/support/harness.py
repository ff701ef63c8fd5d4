"""A running Leadflow inside the test: intake app, relays and scoring consumers on a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import func, select

from services.api import create_app
from services.handoff.main import start_handoff
from services.intake.keys.store import create_key
from services.processes import handoff_parts, start_scoring_with_routing
from services.scoring.main import activate_sample_rules
from shared.config import Settings
from shared.events import SlaEscalated, SlaEscalatedData
from shared.kafka import make_producer
from shared.models import Lead, LeadHistory, OutboxMessage
from shared.runtime import Runtime


@dataclass
class Stack:
    settings: Settings
    intake: Runtime
    client: httpx.AsyncClient
    workers: list[Runtime] = field(default_factory=list)

    async def post_leads(self, count: int, *, concurrency: int = 64) -> list[str]:
        """Post ``count`` distinct leads; every answer must be a 202. Returns the lead ids."""
        gate = asyncio.Semaphore(concurrency)

        async def post(index: int) -> str:
            body = {"email": f"e2e.{index}.{uuid4().hex[:8]}@example.com", "company": "Acme"}
            async with gate:
                response = await self.client.post("/v1/leads", json=body)
            assert response.status_code == 202, response.text
            return str(response.json()["lead_id"])

        return list(await asyncio.gather(*(post(i) for i in range(count))))

    async def scored_counts(self) -> dict[str, int]:
        """How many times each lead was scored (history entries of kind lead.scored)."""
        async with self.intake.sessions() as session:
            rows = await session.execute(
                select(LeadHistory.lead_id, func.count())
                .where(LeadHistory.kind == "lead.scored")
                .group_by(LeadHistory.lead_id)
            )
            return {str(lead_id): int(n) for lead_id, n in rows}

    async def unscored(self) -> int:
        async with self.intake.sessions() as session:
            query = select(func.count()).select_from(Lead).where(Lead.scored_at.is_(None))
            return int(await session.scalar(query) or 0)

    async def progress(self) -> dict[str, int]:
        """Where the pipeline stands, for a failure message."""
        async with self.intake.sessions() as session:
            pending = select(func.count()).where(OutboxMessage.published_at.is_(None))
            leads = select(func.count()).select_from(Lead)
            return {
                "leads": int(await session.scalar(leads) or 0),
                "unscored": await self.unscored(),
                "unpublished": int(await session.scalar(pending) or 0),
                "scored_events": await self.emitted("lead.scored"),
            }

    async def all_scored(self) -> bool:
        return await self.unscored() == 0 and bool(await self.scored_counts())

    async def emitted(self, event_type: str) -> int:
        async with self.intake.sessions() as session:
            query = select(func.count()).where(OutboxMessage.type == event_type)
            return int(await session.scalar(query) or 0)


@asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    scoring_processes: int = 1,
    intake_relays: int = 1,
    activate_rules: bool = True,
    handoff: bool = False,
) -> AsyncIterator[Stack]:
    """Intake (with its relay) and N scoring processes (each with a relay), like production,
    with the sample rules co-signed and live unless ``activate_rules`` is false; with
    ``handoff``, each scoring process hands routed leads over as ``leadflow scoring`` does.

    The client posts as a web form does, with a public key (``Stack.public_key``). It is one
    client address posting thousands of leads, so the rate limits are lifted here: the pipeline
    is under test, the limits have their own tests (tests/intake/integration/test_web_forms.py)."""
    unlimited = {"rate_limit_per_ip": None, "rate_limit_per_key": None}
    settings = settings.model_copy(update={"intake": settings.intake.model_copy(update=unlimited)})
    intake = Runtime.create(settings)
    for index in range(intake_relays):
        intake.start_relay(f"intake-relay-{index}")
    workers = []
    for index in range(scoring_processes):
        worker = Runtime.create(settings)
        worker.start_relay(f"scoring-relay-{index}")
        handler = start_handoff(worker, handoff_parts()) if handoff else None
        start_scoring_with_routing(worker, name=f"scoring-{index}", handoff=handler)
        workers.append(worker)
    transport = httpx.ASGITransport(app=create_app(intake))
    try:
        if activate_rules:
            await activate_sample_rules(intake)
        async with intake.sessions.begin() as session:
            public_key, _ = await create_key(session, kind="public", now=datetime.now(UTC))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://intake", headers={"X-API-Key": public_key}
        ) as client:
            yield Stack(settings=settings, intake=intake, client=client, workers=workers)
    finally:
        for runtime in [intake, *workers]:
            failed = [t for t in runtime.tasks if t.done() and not t.cancelled() and t.exception()]
            await runtime.close()
            assert not failed, f"background task died: {failed[0].exception()!r}"


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    expect: int = 0,
    within: float = 30.0,
    until: Callable[[list[ConsumerRecord]], bool] | None = None,
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the start (no consumer group), until ``expect`` are read
    (or ``until`` says the records read are enough: a relay may publish a record twice)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + within
        enough = until or (lambda read: len(read) >= expect)
        while not enough(records) and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def distinct_events(records: list[ConsumerRecord], subject: str | None = None) -> list[dict]:  # type: ignore[type-arg]
    """The events read, each once (a relay republishes what it fears the broker lost), in the
    order read; only those about ``subject`` if given."""
    seen: set[str] = set()
    events = []
    for record in records:
        event = orjson.loads(record.value or b"{}")
        if event.get("id") in seen or (subject is not None and event.get("subject") != subject):
            continue
        seen.add(event.get("id"))
        events.append(event)
    return events


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(100):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await consumer._client.force_metadata_update()  # noqa: SLF001
    raise AssertionError(f"topic {topic} has no partitions")


async def publish_escalation(
    settings: Settings, lead_id: UUID, owner_id: UUID | None = None, *, reassign: bool = True
) -> SlaEscalated:
    """An escalation as the SLA monitor publishes it, sent straight to the SLA topic."""
    data = SlaEscalatedData(
        lead_id=lead_id, owner_id=owner_id, policy="first_response", reassign=reassign
    )
    event = SlaEscalated.about_lead(lead_id, data, source="/test/sla", time=datetime.now(UTC))
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topics.sla, event.encode(), key=event.key.encode())
    finally:
        await producer.stop()
    return event
