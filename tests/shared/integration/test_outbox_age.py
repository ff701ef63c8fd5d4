"""``leadflow_outbox_oldest_age_seconds``: how long the oldest event still waiting in the outbox
has waited, as the relay looks it up (its first look of each round, every few seconds)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

import shared.outbox as outbox_module
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.kafka import ensure_topics, make_producer
from shared.models import OutboxMessage
from shared.outbox import Relay, shard_of, stage
from tests.support.common import Database, eventually, lead_received, make_settings


async def _stage(db: Database, settings: Settings, lead_id: UUID, at: datetime) -> None:
    async with db.sessions.begin() as session:
        await stage(session, settings, lead_received(lead_id, at=at))


def _age(relay: str) -> float | None:
    return REGISTRY.get_sample_value("leadflow_outbox_oldest_age_seconds", {"relay": relay})


async def _waiting(db: Database) -> int:
    async with db.sessions() as session:
        query = select(func.count()).where(OutboxMessage.published_at.is_(None))
        return int(await session.scalar(query) or 0)


async def test_the_age_is_the_oldest_waiting_event_s_and_zero_once_published(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    producer = make_producer(settings.kafka)
    await producer.start()
    name = f"age-{db.kind}-{uuid4().hex[:6]}"
    relay = Relay(db.sessions, producer, settings, name=name)
    try:
        await relay.look_at_backlog()
        assert _age(name) == 0.0  # nothing waits
        now = datetime.now(UTC)
        oldest = now - timedelta(seconds=120)
        # Three leads' events, staged in time order as events are (the relay takes each
        # shard's first by seq as its oldest).
        for at in (oldest, now - timedelta(seconds=30), now):
            await _stage(db, settings, uuid4(), at)
        await relay.look_at_backlog()
        # Worked out as Prometheus reads it: the oldest event's age at that moment.
        before = (datetime.now(UTC) - oldest).total_seconds()
        age = _age(name)
        after = (datetime.now(UTC) - oldest).total_seconds()
        assert age is not None and before <= age <= after, (before, age, after)
        await ensure_topics(settings.kafka, settings.topics.all())
        assert await relay.publish_pending() == 3
        await relay.look_at_backlog()
        assert _age(name) == 0.0
    finally:
        await producer.stop()


async def test_a_running_relay_reports_a_row_it_cannot_publish_until_it_can(
    pg: Database, broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a shard another relay holds (its row lock) is skipped, so its event waits
    while the rest is published; the age is that event's until the shard is let go."""
    monkeypatch.setattr(outbox_module, "BACKLOG_LOOK_INTERVAL_S", 0.1)
    settings = make_settings(pg, broker)
    stuck, flowing = uuid4(), uuid4()
    while shard_of(str(flowing)) == shard_of(str(stuck)):
        flowing = uuid4()
    await _stage(pg, settings, stuck, datetime.now(UTC) - timedelta(minutes=5))
    name = f"age-held-{uuid4().hex[:6]}"
    producer = make_producer(settings.kafka)
    await producer.start()
    task: asyncio.Task[None] | None = None
    async with pg.engine.connect() as holder:
        await holder.begin()
        lock = "SELECT shard FROM outbox_shards WHERE shard = :shard FOR UPDATE"
        await holder.execute(text(lock), {"shard": shard_of(str(stuck))})
        try:
            task = asyncio.create_task(Relay(pg.sessions, producer, settings, name=name).run())
            await _stage(pg, settings, flowing, datetime.now(UTC))
            await eventually(lambda: _waiting_is(pg, 1))  # the other lead's event went out
            await eventually(lambda: (_age(name) or 0) >= 300)
            assert await _waiting(pg) == 1
        finally:
            await holder.rollback()  # the shard is free
        try:
            await eventually(lambda: _waiting_is(pg, 0))
            await eventually(lambda: _age(name) == 0.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await producer.stop()


async def _waiting_is(db: Database, count: int) -> bool:
    return await _waiting(db) == count
