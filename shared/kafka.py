"""Kafka clients with the settings Leadflow relies on, and explicit topic creation."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.config import KafkaSettings

log = logging.getLogger(__name__)


def bootstrap(settings: KafkaSettings) -> str:
    if not settings.bootstrap_servers:
        raise RuntimeError("LEADFLOW_KAFKA__BOOTSTRAP_SERVERS is not set")
    return settings.bootstrap_servers


def make_producer(settings: KafkaSettings, *, client_id: str | None = None) -> AIOKafkaProducer:
    # acks=all with one in-flight batch per partition (aiokafka's default) keeps a key's order.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings),
        client_id=client_id or settings.client_id,
        acks="all",
        enable_idempotence=settings.idempotence,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_consumer(
    settings: KafkaSettings, *topics: str, group_id: str, fetch_max_wait_ms: int | None = None
) -> AIOKafkaConsumer:
    # Offsets are committed by hand, after the database commit of the batch's effects.
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap(settings),
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        fetch_max_wait_ms=fetch_max_wait_ms or settings.fetch_max_wait_ms,
        request_timeout_ms=max(settings.request_timeout_ms, settings.session_timeout_ms + 5000),
        max_poll_interval_ms=300_000,
    )


async def ensure_topics(settings: KafkaSettings, topics: list[str]) -> list[str]:
    """Create the missing ones; return those that had to be created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap(settings),
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in topics if topic not in existing]
        if missing:
            new = [
                NewTopic(
                    t,
                    num_partitions=settings.partitions,
                    replication_factor=settings.replication_factor,
                )
                for t in missing
            ]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", missing)
        return missing
    finally:
        await admin.close()


async def wait_for_broker(settings: KafkaSettings, timeout_s: float = 30.0) -> None:
    host, _, port = bootstrap(settings).split(",")[0].rpartition(":")
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
