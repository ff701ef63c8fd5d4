"""The consumers' records of applied events (``processed_events``) are pruned past
``consumer.dedupe_retention_days``, on both databases: the table no longer grows by about 25
rows a lead forever, and a recent record still makes a redelivery a no-op."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import insert, select

from shared.consumer import dedupe_retention, dedupe_sweeper, processed
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

DAYS = 14


async def _record(db: Database, consumer: str, age: timedelta, n: int) -> set[str]:
    now = datetime.now(UTC)
    ids = {str(uuid4()) for _ in range(n)}
    rows = [{"consumer": consumer, "event_id": i, "processed_at": now - age} for i in ids]
    async with db.sessions.begin() as session:
        await session.execute(insert(processed), rows)
    return ids


async def _kept(db: Database) -> set[tuple[str, str]]:
    async with db.sessions() as session:
        found = await session.execute(select(processed.c.consumer, processed.c.event_id))
        return {(consumer, event) for consumer, event in found.all()}


async def test_records_past_the_window_go_and_recent_ones_stay(db: Database) -> None:
    settings = make_settings(db, consumer={"dedupe_retention_days": DAYS})
    old = await _record(db, "scoring", timedelta(days=DAYS, hours=1), 120)
    recent = await _record(db, "scoring", timedelta(days=DAYS - 1), 30)
    other = await _record(db, "webhooks", timedelta(days=DAYS, hours=2), 40)
    swept = await dedupe_sweeper(db.sessions, settings).sweep(datetime.now(UTC))
    assert swept == {"processed_events": len(old) + len(other)}
    assert await _kept(db) == {("scoring", event) for event in recent}


async def test_zero_keeps_them_forever(db: Database) -> None:
    settings = make_settings(db, consumer={"dedupe_retention_days": 0})
    await _record(db, "scoring", timedelta(days=3650), 5)
    assert dedupe_retention(settings).keep is None
    assert await dedupe_sweeper(db.sessions, settings).sweep(datetime.now(UTC)) == {
        "processed_events": 0
    }
    assert len(await _kept(db)) == 5


async def test_a_process_with_consumers_sweeps_once_however_many_it_runs(db: Database) -> None:
    runtime = Runtime.create(make_settings(db))
    try:
        for group in ("scoring", "routing", "webhooks"):
            runtime.start_consumer(group, ["t.none"], handler=None)  # type: ignore[arg-type]
        names = [task.get_name() for task in runtime.tasks]
        assert names.count("dedupe-retention") == 1
    finally:
        await runtime.close()
