"""Topics on the embedded broker: created with their own partitions, or, where Leadflow may
not create topics (``kafka.create_topics`` off), checked at start-up with an error that names
the missing ones and how to make them."""

from __future__ import annotations

from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer

from services.settings import load_settings
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.consumer import EventConsumer
from shared.kafka import MissingTopics, ensure_topics, make_producer
from shared.outbox import Relay
from tests.support.common import Database


def settings_for(broker: EmbeddedBroker, database: Database | None = None, **kafka: object):
    prefix = f"t{uuid4().hex[:10]}"
    values = {"bootstrap_servers": broker.bootstrap_servers, "idempotence": False, **kafka}
    values = {
        k: ({t.replace("{p}", prefix): n for t, n in v.items()} if isinstance(v, dict) else v)
        for k, v in values.items()
    }
    db = {"url": database.url} if database else {}
    return load_settings(db=db, kafka=values, topics={"prefix": prefix})


async def partitions(broker: EmbeddedBroker, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        await consumer.topics()  # fresh metadata
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


async def test_each_topic_gets_its_own_partitions_else_the_default(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_for(broker, partitions=2, topic_partitions={"{p}.intake": 3})
    topics = settings.topics
    created = await ensure_topics(settings.kafka, [topics.intake, topics.sla])
    assert created == [topics.intake, topics.sla]
    assert await partitions(broker, topics.intake) == 3
    assert await partitions(broker, topics.sla) == 2


async def test_without_topic_creation_missing_topics_are_named_with_their_partitions(
    broker: EmbeddedBroker,
) -> None:
    settings = settings_for(
        broker, create_topics=False, partitions=6, topic_partitions={"{p}.intake": 12}
    )
    topics = settings.topics
    with pytest.raises(MissingTopics) as error:
        await ensure_topics(settings.kafka, [topics.intake, topics.dead_letter])
    message = str(error.value)
    assert f"topics missing on the broker: {topics.intake}, {topics.dead_letter}" in message
    assert f"--topic {topics.intake} --partitions 12 --replication-factor 1" in message
    assert f"--topic {topics.dead_letter} --partitions 6 --replication-factor 1" in message
    assert "LEADFLOW_KAFKA__CREATE_TOPICS" in message
    assert await partitions(broker, topics.intake) == 0, "it must not create them"

    created = settings.kafka.model_copy(update={"create_topics": True})
    await ensure_topics(created, [topics.intake])
    with pytest.raises(MissingTopics) as error:  # only what is still missing
        await ensure_topics(settings.kafka, [topics.intake, topics.dead_letter])
    assert f"missing on the broker: {topics.dead_letter}." in str(error.value)
    await ensure_topics(created, [topics.dead_letter])
    assert await ensure_topics(settings.kafka, [topics.intake, topics.dead_letter]) == []


async def test_the_relay_and_a_consumer_stop_at_start_up_when_topics_are_missing(
    broker: EmbeddedBroker, sqlite_database: Database
) -> None:
    """What a process starts first: the relay (which needs every topic, the sentinel too) and
    its consumers; each ends with the error instead of waiting for topics that no one makes."""
    settings: Settings = settings_for(broker, sqlite_database, create_topics=False)
    topics = settings.topics
    await ensure_topics(settings.kafka.model_copy(update={"create_topics": True}), [topics.intake])
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        relay = Relay(sqlite_database.sessions, producer, settings)
        with pytest.raises(MissingTopics) as error:
            await relay.run()
        missing = [topics.lifecycle, topics.sla, topics.dead_letter, topics.sentinel]
        assert f"topics missing on the broker: {', '.join(missing)}." in str(error.value)

        async def handler(*_: object, **__: object) -> None:
            raise AssertionError("nothing to handle")

        consumer = EventConsumer(
            name="scoring",
            topics=[topics.intake],
            handler=handler,
            sessions=sqlite_database.sessions,
            producer=producer,
            settings=settings,
        )
        with pytest.raises(MissingTopics, match=f"missing on the broker: {topics.dead_letter}"):
            await consumer.run()
    finally:
        await producer.stop()
