"""A broker that restarts empty while a batch is being applied: the batch's offsets, read from
the old log, are not committed to the new one. Committed there, they would make a consumer
started later skip the new log's records up to them (the chaos run, issue 20)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shared.broker import EmbeddedBroker
from shared.consumer import EventConsumer
from shared.kafka import ensure_topics, make_producer
from tests.support.common import Database, eventually, lead_received, make_settings


class Gated:
    """Holds its first batch until ``open`` is set; notes every event id applied."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.holding = asyncio.Event()
        self.applied: list[str] = []

    async def __call__(self, event: Any, **_: Any) -> None:
        self.holding.set()
        await self.open.wait()
        self.applied.append(str(event.id))


async def _publish(settings: Any, n: int) -> list[str]:
    await ensure_topics(settings.kafka, [settings.topics.intake])
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        events = [lead_received() for _ in range(n)]
        for event in events:
            await producer.send(settings.topics.intake, event.encode(), key=event.subject.encode())
        await producer.flush()
        return [str(e.id) for e in events]
    finally:
        await producer.stop()


async def test_offsets_polled_before_a_broker_restart_are_not_committed_after_it(
    pg: Database, tmp_path: Path
) -> None:
    """On one database: the offsets are the broker's business, not the database's."""
    db = pg
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    broker.start()
    try:
        settings = make_settings(db, broker)
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"partitions": 1})}
        )
        await _publish(settings, 10)
        handler = Gated()
        producer = make_producer(settings.kafka)
        await producer.start()

        def consumer() -> EventConsumer:
            return EventConsumer(
                name="restart",
                topics=[settings.topics.intake],
                handler=handler,
                sessions=db.sessions,
                producer=producer,
                settings=settings,
            )

        first = consumer()
        task = asyncio.create_task(first.run())
        await asyncio.wait_for(handler.holding.wait(), 30)  # applying the old log's batch

        broker.stop()
        broker.start()  # empty: a new log, a new group
        reassigned = first.assignments.count
        await eventually(lambda: first.assignments.count > reassigned)
        handler.open.set()
        await eventually(lambda: len(handler.applied) >= 10 and first.stale_commits == 1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

        # More records on the new log than the old batch's offsets, then a consumer of the same
        # group starts: it must read the new log from its start.
        fresh = await _publish(settings, 25)
        second = asyncio.create_task(consumer().run())
        try:
            await eventually(lambda: set(fresh) <= set(handler.applied))
        finally:
            second.cancel()
            await asyncio.gather(second, return_exceptions=True)
            await producer.stop()
    finally:
        broker.stop()
