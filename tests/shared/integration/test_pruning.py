"""Retention sweeps (``shared.pruning``) on the outbox, as every relay runs them: the rows past
the window go in batches and the newer stay, on both databases; on PostgreSQL, relays pruning at
once take each row once, and a row another transaction holds is skipped, not waited for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from shared.ids import new_id
from shared.models import OutboxMessage, table_of
from shared.outbox import Relay, shard_of
from shared.pruning import Retention, Sweeper, keep_for, prune
from tests.support.common import Database, make_settings

outbox = table_of(OutboxMessage)
WINDOW = timedelta(hours=1)


def outbox_retention(keep: timedelta | None = WINDOW) -> Retention:
    return Retention(name="outbox", table=outbox, key="seq", age="published_at", keep=keep)


async def add_rows(db: Database, label: str, n: int, published: datetime | None) -> None:
    rows = [
        {
            "id": new_id(),
            "aggregate_type": "lead",
            "aggregate_id": f"{label}-{i}",
            "shard": shard_of(f"{label}-{i}"),
            "topic": "t.intake",
            "type": "lead.received",
            "payload": "{}",
            "created_at": datetime.now(UTC),
            "published_at": published - timedelta(seconds=i) if published else None,
        }
        for i in range(n)
    ]
    async with db.sessions.begin() as session:
        await session.execute(insert(outbox), rows)


async def left(db: Database) -> dict[str, int]:
    """How many rows of each label are left."""
    label = func.substr(outbox.c.aggregate_id, 1, 3)
    async with db.sessions() as session:
        found = await session.execute(select(label, func.count()).group_by(label))
        return {name: int(n) for name, n in found.all()}


async def seed(db: Database, now: datetime) -> None:
    await add_rows(db, "old", 95, now - WINDOW - timedelta(minutes=1))
    await add_rows(db, "new", 7, now - WINDOW + timedelta(minutes=1))
    await add_rows(db, "unp", 5, None)  # never published: the relay's to send, never pruned


async def test_rows_past_the_window_go_in_batches_and_the_rest_stay(db: Database) -> None:
    now = datetime.now(UTC)
    await seed(db, now)

    assert await prune(db.sessions, outbox_retention(), now=now, batch=10) == 95

    assert await left(db) == {"new": 7, "unp": 5}
    assert await prune(db.sessions, outbox_retention(), now=now, batch=10) == 0


async def test_zero_days_keeps_forever(db: Database) -> None:
    now = datetime.now(UTC)
    await seed(db, now)
    assert keep_for(0) is None and keep_for(1.5) == timedelta(days=1.5)

    sweeper = Sweeper(db.sessions, [outbox_retention(keep_for(0))], interval_s=1, batch=10)

    assert await sweeper.sweep(now + timedelta(days=3650)) == {"outbox": 0}
    assert await left(db) == {"old": 95, "new": 7, "unp": 5}


async def test_the_relay_prunes_by_its_retention_in_batches(db: Database) -> None:
    now = datetime.now(UTC)
    await seed(db, now)
    settings = make_settings(db, outbox={"retention_hours": 1, "batch_size": 9})
    relay = Relay(db.sessions, producer=None, settings=settings)  # type: ignore[arg-type]

    assert await relay.prune(now) == 95
    assert await left(db) == {"new": 7, "unp": 5}


async def test_relays_pruning_at_once_take_each_row_once(pg: Database) -> None:
    now = datetime.now(UTC)
    await add_rows(pg, "old", 600, now - WINDOW - timedelta(minutes=1))
    await add_rows(pg, "new", 10, now)
    settings = make_settings(pg, outbox={"retention_hours": 1, "batch_size": 25})
    relays = [Relay(pg.sessions, None, settings) for _ in range(4)]  # type: ignore[arg-type]

    pruned = await asyncio.wait_for(asyncio.gather(*(r.prune(now) for r in relays)), 60)

    assert sum(pruned) == 600
    assert await left(pg) == {"new": 10}


async def test_a_row_held_by_another_transaction_is_skipped_not_waited_for(pg: Database) -> None:
    now = datetime.now(UTC)
    await add_rows(pg, "old", 40, now - WINDOW - timedelta(minutes=1))
    oldest = select(outbox.c.seq).order_by(outbox.c.published_at).limit(3).with_for_update()
    async with pg.sessions.begin() as holder:
        held = list((await holder.scalars(oldest)).all())

        # Without SKIP LOCKED this would wait for the holder, which waits for it: a timeout.
        pruned = await asyncio.wait_for(
            prune(pg.sessions, outbox_retention(), now=now, batch=10), 10
        )

        assert pruned == 37 and len(held) == 3
    assert await left(pg) == {"old": 3}
    assert await prune(pg.sessions, outbox_retention(), now=now, batch=10) == 3
