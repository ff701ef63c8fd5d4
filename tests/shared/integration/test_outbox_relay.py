"""The relay against a real broker: order per key, two relays side by side, broker loss."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from aiokafka.errors import UnknownError
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import func, select, update

import shared.outbox as outbox_module
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.events import LeadReceived, LeadReceivedData
from shared.kafka import ensure_topics, make_producer
from shared.models import OutboxMessage
from shared.outbox import Relay, shard_of, stage
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import distinct_events, read_topic
from tests.support.plans import nodes, plan_of


def received(lead_id: object, n: int) -> LeadReceived:
    data = LeadReceivedData(lead_id=lead_id, inquiry_id=uuid4(), source=f"s{n}", new_lead=n == 0)
    return LeadReceived.about_lead(lead_id, data, source="/test", time=datetime.now(UTC))


async def stage_many(db: Database, settings: Settings, keys: int, per_key: int) -> None:
    """Interleave keys: key 0 #0, key 1 #0, …, key 0 #1, … in separate transactions."""
    lead_ids = [uuid4() for _ in range(keys)]
    for n in range(per_key):
        async with db.sessions.begin() as session:
            await stage(session, settings, *(received(lead_id, n) for lead_id in lead_ids))


async def unpublished(db: Database) -> int:
    async with db.sessions() as session:
        query = select(func.count()).where(OutboxMessage.published_at.is_(None))
        return int(await session.scalar(query) or 0)


async def run_relays(db: Database, settings: Settings, count: int) -> list[asyncio.Task[None]]:
    tasks = []
    for index in range(count):
        producer = make_producer(settings.kafka)
        await producer.start()
        relay = Relay(db.sessions, producer, settings, name=f"relay-{index}")

        async def run(relay: Relay = relay) -> None:
            try:
                await relay.run()
            finally:
                await relay.producer.stop()

        tasks.append(asyncio.create_task(run()))
    return tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results


async def relay_everything(db: Database, settings: Settings, *, expect: int) -> list:  # type: ignore[type-arg]
    """Run one relay until nothing is left to publish; read the intake topic back."""
    tasks = await run_relays(db, settings, 1)
    try:
        await eventually(lambda: _none_left(db))
    finally:
        await stop(tasks)
    return await read_topic(settings, settings.topics.intake, expect=expect)


def in_key_order(records: list) -> dict[str, list[int]]:  # type: ignore[type-arg]
    order: dict[str, list[int]] = defaultdict(list)
    for record in records:
        event = json.loads(record.value)
        order[event["subject"]].append(int(event["data"]["source"][1:]))
    return order


async def test_each_key_is_published_in_order_on_both_databases(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    await stage_many(db, settings, keys=20, per_key=10)
    records = await relay_everything(db, settings, expect=200)
    assert len(records) == 200
    order = in_key_order(records)
    assert len(order) == 20
    assert all(sequence == list(range(10)) for sequence in order.values())


async def test_keys_go_where_producer_send_puts_them_in_order_through_full_batches(
    db: Database, broker: EmbeddedBroker
) -> None:
    """The relay submits batches per partition: each key must land on the partition the
    producer's (and the Java client's) partitioner picks, and rows that overflow one batch
    (~100 KB each here, 256 KB batches) keep their order across batches."""
    settings = make_settings(db, broker)
    lead_ids = [uuid4() for _ in range(6)]
    padding = "/test/" + "x" * 100_000
    for n in range(8):
        async with db.sessions.begin() as session:
            events = [received(lead_id, n) for lead_id in lead_ids]
            await stage(
                session, settings, *(e.model_copy(update={"source": padding}) for e in events)
            )
    records = await relay_everything(db, settings, expect=48)
    order = in_key_order(records)
    assert len(records) == 48 and all(sequence == list(range(8)) for sequence in order.values())
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        for record in records:
            placed = await producer.send_and_wait(settings.topics.lifecycle, b"{}", key=record.key)
            assert placed.partition == record.partition, record.key
    finally:
        await producer.stop()
    assert len({record.partition for record in records}) > 1


async def test_a_batch_that_fails_for_good_holds_back_the_batches_behind_it(
    db: Database, broker: EmbeddedBroker
) -> None:
    """A round of several batches on one partition whose second batch fails with an error
    aiokafka does not retry (as after the memory-only broker restarted empty): none of the
    batches behind it may reach the broker before it, or a consumer that deduplicates by id
    applies a lead's later events first. The other batches really go to the broker."""
    settings = make_settings(
        db,
        broker,
        kafka={
            "bootstrap_servers": broker.bootstrap_servers,
            "partitions": 1,
            "idempotence": False,
        },
    )
    lead_ids = [uuid4() for _ in range(6)]
    padding = "/test/" + "x" * 100_000  # two rows to a 256 KB batch
    for n in range(4):
        async with db.sessions.begin() as session:
            events = [received(lead_id, n) for lead_id in lead_ids]
            await stage(
                session, settings, *(e.model_copy(update={"source": padding}) for e in events)
            )
    producer = make_producer(settings.kafka)
    await producer.start()
    submitted = 0
    send_batch = producer.send_batch

    async def second_fails(batch: BatchBuilder, topic: str, *, partition: int) -> asyncio.Future:  # type: ignore[type-arg]
        nonlocal submitted
        submitted += 1
        if submitted != 2:
            return await send_batch(batch, topic, partition=partition)
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(UnknownError("the broker lost the partition"))
        return failed

    producer.send_batch = second_fails  # type: ignore[method-assign]
    relay = Relay(db.sessions, producer, settings)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: _none_left(db))
        records = await read_topic(
            settings,
            settings.topics.intake,
            until=lambda read: len(distinct_events(read)) >= 24,
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    assert submitted > 12  # the round failed and was published again
    assert {r.partition for r in records} == {0}
    first_seen: dict[str, list[int]] = defaultdict(list)
    for event in distinct_events(records):
        first_seen[event["subject"]].append(int(event["data"]["source"][1:]))
    assert first_seen == {str(lead_id): [0, 1, 2, 3] for lead_id in lead_ids}


async def test_two_relays_share_the_work_without_reordering_or_duplicates(
    pg: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(pg, broker, outbox={"batch_size": 7})  # many small rounds
    tasks = await run_relays(pg, settings, 2)
    try:
        await stage_many(pg, settings, keys=40, per_key=25)
        await eventually(lambda: _none_left(pg), within=60)
    finally:
        await stop(tasks)
    records = await read_topic(settings, settings.topics.intake, expect=1000)
    assert len(records) == 1000  # none twice
    order = in_key_order(records)
    assert all(sequence == list(range(25)) for sequence in order.values())
    by_partition: dict[int, set[int]] = defaultdict(set)
    for record in records:
        by_partition[record.partition].add(shard_of(record.key.decode()))
    assert len(by_partition) > 1  # keyed records spread over partitions


async def test_a_broker_that_lost_its_topics_gets_every_retained_event_again(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    await stage_many(db, settings, keys=5, per_key=2)
    tasks = await run_relays(db, settings, 1)
    try:
        await eventually(lambda: _none_left(db))
        # The same database meets a broker that has never seen these topics (as after a
        # restart of the memory-only broker): a new prefix stands for the empty broker.
        fresh = settings.model_copy(
            update={
                "topics": settings.topics.model_copy(
                    update={"prefix": settings.topics.prefix + "x"}
                )
            }
        )
        async with db.sessions.begin() as session:
            await session.execute(update(OutboxMessage).values(topic=fresh.topics.intake))
    finally:
        await stop(tasks)
    tasks = await run_relays(db, fresh, 1)
    try:
        records = await read_topic(fresh, fresh.topics.intake, expect=10)
    finally:
        await stop(tasks)
    assert len(records) == 10
    assert all(seq == [0, 1] for seq in in_key_order(records).values())


async def test_rows_wait_while_the_broker_is_away_and_go_out_when_it_returns(
    db: Database,
) -> None:
    away = EmbeddedBroker()
    away.start()
    settings = make_settings(db, away)
    tasks = await run_relays(db, settings, 1)
    try:
        away.stop()
        await stage_many(db, settings, keys=3, per_key=3)
        assert await unpublished(db) == 9  # kept, not dropped
        away.start()
        await eventually(lambda: _none_left(db), within=60)
        records = await read_topic(settings, settings.topics.intake, expect=9)
        assert len(records) == 9
    finally:
        await stop(tasks)
        away.stop()


async def test_a_broker_restarted_under_a_running_relay_gets_the_lost_events_before_new_ones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay asks the broker for the sentinel only over connections it has not checked yet:
    after a restart (topics lost, the intake topic back at once as a consumer would create it)
    what was published before goes out again ahead of what is staged after. The periodic watch
    is put out of reach, so only the check before a batch can notice."""
    monkeypatch.setattr(outbox_module, "BROKER_WATCH_INTERVAL_S", 3600.0)
    restarting = EmbeddedBroker()
    restarting.start()
    settings = make_settings(db, restarting)
    earlier, later = [uuid4() for _ in range(4)], [uuid4() for _ in range(4)]
    tasks = await run_relays(db, settings, 1)
    try:
        async with db.sessions.begin() as session:
            await stage(session, settings, *(received(lead_id, 0) for lead_id in earlier))
        await eventually(lambda: _none_left(db))
        restarting.stop()
        restarting.start()
        await ensure_topics(settings.kafka, [settings.topics.intake])
        async with db.sessions.begin() as session:
            await stage(session, settings, *(received(lead_id, 0) for lead_id in later))
            await stage(session, settings, *(received(lead_id, 1) for lead_id in earlier))
        await eventually(lambda: _none_left(db), within=60)
        records = await read_topic(settings, settings.topics.intake, expect=12)
    finally:
        await stop(tasks)
        restarting.stop()
    order = in_key_order(records)
    assert len(records) == 12
    assert {key: order[str(key)] for key in earlier} == {key: [0, 1] for key in earlier}
    assert {key: order[str(key)] for key in later} == {key: [0] for key in later}


async def test_prune_deletes_only_rows_published_before_the_retention_window(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, outbox={"retention_hours": 1})
    await stage_many(db, settings, keys=2, per_key=2)
    now = datetime.now(UTC)
    async with db.sessions.begin() as session:
        first_two = select(OutboxMessage.seq).order_by(OutboxMessage.seq).limit(2)
        ids = list((await session.scalars(first_two)).all())
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.seq.in_(ids))
            .values(published_at=now - timedelta(hours=2))
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.seq == ids[-1] + 1)
            .values(published_at=now - timedelta(minutes=5))
        )
    producer = make_producer(settings.kafka)
    relay = Relay(db.sessions, producer, settings)
    assert await relay.prune(now) == 2
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
    assert await unpublished(db) == 1


async def _none_left(db: Database) -> bool:
    return await unpublished(db) == 0


async def test_the_relays_read_cannot_walk_the_published_rows(pg: Database) -> None:
    """Migration 0008: ``ix_outbox_published_at`` holds published rows only, so no plan of the
    relay's ``published_at IS NULL`` read, not even a generic one cached while the table was
    small, goes through it (one that did walked every row published since the last vacuum)."""
    async with pg.engine.connect() as connection:
        await connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(
            "PREPARE pending_read(smallint[], int) AS " + outbox_module.PENDING_IN_PG
        )
        plan = "\n".join(
            row[0]
            for row in await connection.exec_driver_sql(
                "EXPLAIN EXECUTE pending_read('{0,1,2,3}', 5000)"
            )
        )
        await connection.exec_driver_sql("DEALLOCATE pending_read")
        await connection.rollback()
    assert "ix_outbox_published_at" not in plan, plan


BACKLOG_THEN_PUBLISHED = """
INSERT INTO outbox (id, aggregate_type, aggregate_id, shard, topic, type, payload, created_at)
SELECT gen_random_uuid(), 'lead', n::text, n % 16, 't', 'lead.received', repeat('x', 500), now()
FROM generate_series(1, 30000) AS n
"""


async def test_the_relays_reads_go_through_the_pending_index_after_an_analyze_in_a_backlog(
    pg: Database,
) -> None:
    """ANALYZE while most rows waited (autovacuum's, during a backlog), the rounds read once the
    backlog is gone: locking the shards and reading a round go through ``ix_outbox_pending``,
    never through every row published since (a scan of the table, or the primary key walked
    from its oldest row, as both did with the statistics migration 0020 stops gathering). In one
    transaction, rolled back, statistics included."""
    async with pg.engine.connect() as connection:
        await connection.exec_driver_sql(BACKLOG_THEN_PUBLISHED)
        await connection.exec_driver_sql("ANALYZE outbox")
        await connection.exec_driver_sql(
            "UPDATE outbox SET published_at = now() WHERE seq <= (SELECT max(seq) - 40 FROM outbox)"
        )
        lock = outbox_module.LOCK_PENDING_SHARDS.compile(connection)
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        plans = {}
        for name, sql, parameters, expected in [
            ("lock", str(lock), tuple(lock.params.values()), 16),
            ("read", outbox_module.PENDING_IN_PG, (list(range(16)), 500), 40),
        ]:
            explained = await driver.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *parameters)
            plans[name] = plan_of(explained)
            assert len(await driver.fetch(sql, *parameters)) == expected, name
        await connection.rollback()
    for name, plan in plans.items():
        found = list(nodes(plan))
        scanned = [n["Node Type"] for n in found if n.get("Relation Name") == "outbox"]
        assert "Seq Scan" not in scanned, (name, plan)
        used = {n["Index Name"] for n in found if n.get("Index Name", "").endswith("outbox")}
        used |= {n["Index Name"] for n in found if n.get("Index Name", "").startswith("ix_outbox")}
        assert used == {"ix_outbox_pending"}, (name, plan)


class Polls:
    """Each round of ``relay``: when it began (the loop's clock) and the relay's idle poll
    interval then."""

    def __init__(self, relay: Relay) -> None:
        self.rounds: list[tuple[float, float]] = []
        self._more = asyncio.Event()
        publish = relay.publish_pending
        loop = asyncio.get_running_loop()

        async def counted() -> int:
            self.rounds.append((loop.time(), relay.poll.seconds))
            self._more.set()
            return await publish()

        relay.publish_pending = counted  # type: ignore[method-assign]

    async def until(self, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.rounds) < count:
                self._more.clear()
                await self._more.wait()


async def test_an_idle_relay_polls_ever_less_often(db: Database, broker: EmbeddedBroker) -> None:
    """A service's relay is woken by its own process's commits; its polls find only what other
    processes left, so each that finds nothing doubles the wait, up to ``idle_poll_max_ms``.
    ``leadflow relay`` (``woken_by_commits=False``), which nothing wakes, keeps its interval.
    Rows another process stages without a wake-up are still published. (A wake-up brings the
    interval back: ``GrowingPoll.found``, tests/shared/unit/test_waits.py.)"""
    settings = make_settings(db, broker, outbox={"poll_interval_ms": 10, "idle_poll_max_ms": 80})
    producer = make_producer(settings.kafka)
    await producer.start()
    woken_relay = Relay(db.sessions, producer, settings, name="woken")
    polling_relay = Relay(db.sessions, producer, settings, name="polling", woken_by_commits=False)
    woken_polls, polling_polls = Polls(woken_relay), Polls(polling_relay)
    tasks = [asyncio.create_task(r.run()) for r in (woken_relay, polling_relay)]
    try:
        await woken_polls.until(7)
        intervals = [seconds for _, seconds in woken_polls.rounds[:7]]
        assert intervals == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08, 0.08]
        began = [at for at, _ in woken_polls.rounds[:7]]
        gaps = [b - a for a, b in zip(began, began[1:], strict=False)]
        assert min(gaps[3:]) >= 0.07, gaps  # ~0.01 each when every poll waited the shortest
        await polling_polls.until(7)
        assert {seconds for _, seconds in polling_polls.rounds} == {0.01}

        async with db.sessions.begin() as session:  # as another process would: no wake-up
            await stage(session, settings, received(uuid4(), 0))
        await eventually(lambda: _none_left(db))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()


async def test_a_wakeup_after_a_commit_that_staged_nothing_starts_no_round(
    db: Database, broker: EmbeddedBroker
) -> None:
    """Every consumer's commit wakes its process's relay; one that staged no event (the webhooks
    consumer's, usually the handoff's) gave the relay a round, a transaction, for nothing."""
    settings = make_settings(db, broker, outbox={"poll_interval_ms": 60_000})
    producer = make_producer(settings.kafka)
    await producer.start()
    relay = Relay(db.sessions, producer, settings)
    polls = Polls(relay)
    task = asyncio.create_task(relay.run())
    try:
        await polls.until(1)
        async with db.sessions.begin() as session:  # a transaction that stages nothing
            await session.execute(select(func.count()).select_from(OutboxMessage))
        relay.notify()
        await eventually(lambda: not relay.wakeup.is_set())  # it woke, and waits again
        assert len(polls.rounds) == 1
        async with db.sessions.begin() as session:
            await stage(session, settings, received(uuid4(), 0))
        relay.notify()
        async with asyncio.timeout(30):  # the poll is a minute away: only the wake-up can
            await polls.until(2)
            await eventually(lambda: _none_left(db))
        assert len(polls.rounds) == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
