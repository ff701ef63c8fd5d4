"""A backlog is applied in lanes at once (PostgreSQL), each lead's events still in their order,
even from a single partition."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import text

from shared.broker import EmbeddedBroker
from shared.consumer import EventConsumer
from shared.kafka import ensure_topics, make_producer
from tests.support.common import Database, eventually, lead_received, make_settings

LEADS, PER_LEAD = 40, 6


class Recording:
    """Notes each lead's events in the order applied, and how many batches ran at once."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.applied: dict[str, list[int]] = defaultdict(list)
        self.running = self.most_at_once = 0

    async def handle_batch(self, events: list[Any], *, session: Any, now: datetime) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            # Hold the transaction open a little, as a batch's statements would.
            pause = "SELECT pg_sleep(0.02)" if self.database == "postgresql" else "SELECT 1"
            await session.execute(text(pause))
            for event in events:
                self.applied[event.subject].append(int(event.data.source[1:]))
        finally:
            self.running -= 1

    async def __call__(self, event: Any, **kwargs: Any) -> None:
        await self.handle_batch([event], **kwargs)


async def test_a_backlog_runs_in_lanes_and_keeps_each_leads_order(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, consumer={"max_batch": 10})
    # One partition: the lanes, not partitions, are what runs at once.
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"partitions": 1})}
    )
    topic = settings.topics.intake
    await ensure_topics(settings.kafka, [topic])
    leads = [uuid4() for _ in range(LEADS)]
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for n in range(PER_LEAD):  # interleaved: every lead's #0, then every lead's #1, …
            for lead in leads:
                await producer.send(
                    topic, lead_received(lead, source=f"s{n}").encode(), key=str(lead).encode()
                )
        await producer.flush()
        handler = Recording(db.kind)
        consumer = EventConsumer(
            name="lanes",
            topics=[topic],
            handler=handler,
            sessions=db.sessions,
            producer=producer,
            settings=settings,
        )
        task = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: sum(map(len, handler.applied.values())) == LEADS * PER_LEAD)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await producer.stop()
    assert handler.applied == {str(lead): list(range(PER_LEAD)) for lead in leads}
    # 240 records in batches of 10: several lanes at once on PostgreSQL, one writer on SQLite.
    assert handler.most_at_once > 1 if db.kind == "postgresql" else handler.most_at_once == 1
