"""``leadflow_consumer_lag``: what a consumer has polled but not yet committed, per partition, as
it saw the partition's end at its last poll."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

from prometheus_client import REGISTRY

from shared.broker import EmbeddedBroker
from shared.consumer import EventConsumer
from shared.kafka import ensure_topics, make_producer
from tests.support.common import Database, eventually, lead_received, make_settings


class Gated:
    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.applied = 0

    async def __call__(self, event: Any, **_: Any) -> None:
        await self.open.wait()
        self.applied += 1


async def test_the_lag_rises_while_a_batch_waits_and_falls_to_zero_once_committed(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"partitions": 1})}
    )
    topic = settings.topics.intake
    await ensure_topics(settings.kafka, [topic])
    name = f"lag-{db.kind}-{uuid4().hex[:6]}"

    def lag() -> float | None:
        labels = {"consumer": name, "topic": topic, "partition": "0"}
        return REGISTRY.get_sample_value("leadflow_consumer_lag", labels)

    producer = make_producer(settings.kafka)
    await producer.start()
    handler = Gated()
    consumer = EventConsumer(
        name=name,
        topics=[topic],
        handler=handler,
        sessions=db.sessions,
        producer=producer,
        settings=settings,
    )
    task = asyncio.create_task(consumer.run())
    try:
        for _ in range(5):
            await producer.send_and_wait(topic, lead_received().encode())
        await eventually(lambda: handler.applied == 5 and lag() == 0)

        handler.open.clear()
        batch = producer.create_batch()  # one batch: the consumer polls all seven at once
        for _ in range(7):
            assert (
                batch.append(key=None, value=lead_received().encode(), timestamp=None) is not None
            )
        batch.close()
        await (await producer.send_batch(batch, topic, partition=0))
        await eventually(lambda: lag() == 7)  # polled, held by the handler, not committed
        assert handler.applied == 5

        handler.open.set()
        await eventually(lambda: handler.applied == 12 and lag() == 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
