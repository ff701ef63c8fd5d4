"""Transactional outbox: ``stage`` writes an event in the caller's transaction; ``Relay`` publishes.

Order per key: a key always maps to one shard, and a relay publishes a shard only while it holds
that shard's row lock (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), in ``seq`` order. Two relays
therefore share shards but never publish the same shard at once. Callers that emit several events
for one lead lock the lead row first, so ``seq`` order is commit order for that lead.

Broker loss: the embedded broker keeps topics in memory only. Before publishing, the relay checks
that the sentinel topic (which nothing but ``ensure_topics`` creates) is still there; when it is
gone, the relay recreates the topics and publishes again every row still retained. Consumers
deduplicate by event id, so publishing twice changes nothing. The check asks the broker only when
the producer talks to it over a connection the last check did not go through (a broker that
restarted has dropped every connection to it, so a batch sent over a connection the check saw
reaches the broker the check saw), and at least every ``BROKER_WATCH_INTERVAL_S``.
With ``kafka.create_topics`` off (a managed cluster), the check requires every topic instead, and
a missing one stops the relay with ``MissingTopics``: nothing it could do would bring it back.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from opentelemetry.context import Context
from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared import pruning, tracing
from shared.config import Settings
from shared.db import driver_connection, insert_rows, rowcount, translated
from shared.events import CloudEvent, topic_for
from shared.kafka import MissingTopics, ensure_topics, missing_topics_message
from shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED, OUTBOX_REPUBLISHED
from shared.models import OUTBOX_SHARDS, OutboxMessage, OutboxShard, table_of
from shared.outages import describe
from shared.partitioning import partition_of
from shared.waits import GrowingPoll, woken

log = logging.getLogger(__name__)
E = TypeVar("E", bound=CloudEvent)
BROKER_WATCH_INTERVAL_S = 2.0
BACKLOG_LOOK_INTERVAL_S = 5.0
"""How often a relay looks up the oldest event waiting (``leadflow_outbox_oldest_age_seconds``)."""
outbox = table_of(OutboxMessage)
shards = table_of(OutboxShard)

_waits_in_shard = (
    select(outbox.c.seq)
    .where(outbox.c.published_at.is_(None), outbox.c.shard == shards.c.shard)
    .exists()
)
LOCK_PENDING_SHARDS = (
    select(shards.c.shard)
    .where(_waits_in_shard)
    .order_by(shards.c.shard)
    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer and no FOR UPDATE
)
"""The shards with a row waiting, locked: one probe of the pending index (shard, seq) per shard,
where ``shard IN (SELECT DISTINCT shard … WHERE published_at IS NULL)`` read every waiting row,
each round, however long the backlog."""
PENDING_IN = (
    select(outbox.c.seq, outbox.c.topic, outbox.c.aggregate_id, outbox.c.payload)
    .where(outbox.c.published_at.is_(None), outbox.c.shard.in_(bindparam("owned", expanding=True)))
    .order_by(outbox.c.seq)
    .limit(bindparam("limit"))
)
"""A round's rows, read after the shards are locked: in a statement of its own, so that its
snapshot sees what the relay that held a shard before committed (in one statement with the lock,
PostgreSQL would read with a snapshot taken before it, and publish those rows again)."""
_first_pending = (
    select(outbox.c.created_at)
    .where(outbox.c.published_at.is_(None), outbox.c.shard == shards.c.shard)
    .order_by(outbox.c.seq)
    .limit(1)
    .scalar_subquery()
)
OLDEST_PENDING = select(func.min(_first_pending)).select_from(shards)
"""When the oldest event waiting was staged (None: none waits). Each shard's first waiting row
is one probe of the pending index (shard, seq): the cost stays that of 16 index lookups however
long the backlog grows (a ``min`` over every waiting row would read them all, every time, and
most of all while the broker is away)."""
MARK_PUBLISHED = (
    update(outbox)
    .where(outbox.c.seq.in_(bindparam("seqs", expanding=True)))
    .values(published_at=bindparam("now"))
)
# On PostgreSQL the round's read and mark with arrays as parameters, straight to asyncpg: one
# statement text whatever the number of shards and rows (an expanding IN of a round's thousands
# of seqs was rendered, and prepared by the server, anew each round), and no per-row result
# processing in SQLAlchemy.
PENDING_IN_PG = (
    "SELECT o.seq, o.topic, o.aggregate_id, o.payload"
    " FROM unnest($1::smallint[]) AS owned(shard) CROSS JOIN LATERAL ("
    "SELECT seq, topic, aggregate_id, payload FROM outbox"
    " WHERE published_at IS NULL AND outbox.shard = owned.shard ORDER BY seq LIMIT $2) AS o"
    " ORDER BY o.seq LIMIT $2"
)
"""Each owned shard's first ``limit`` rows, then the round's first ``limit`` of those: through
the pending index (shard, seq), in order, a shard's read can stop at ``limit`` rows however long
its backlog (``shard = ANY($1) ORDER BY seq`` has no index in that order but the primary key,
and sorted every waiting row). Migration 0020 keeps the planner on that index: with statistics
on ``published_at`` gathered during a backlog, it walked the primary key instead, from the
oldest row retained through every published one (22 ms a round in a 25 s benchmark, and
growing with the retention window)."""
MARK_PUBLISHED_PG = "UPDATE outbox SET published_at = $2 WHERE seq = ANY($1::bigint[])"


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % OUTBOX_SHARDS


def outbox_row(event: CloudEvent, settings: Settings, *, aggregate_type: str = "lead") -> dict:
    """The event's outbox row. With tracing on, an event without a trace context gets one here
    (``shared.tracing.stamped``): it is in the payload, so it crosses the relay and Kafka as is."""
    topic = topic_for(event, settings.topics)
    if tracing.active and event.traceparent is None:
        event = tracing.stamped(event, topic)
    return {
        "id": event.id,
        "aggregate_type": aggregate_type,
        "aggregate_id": event.key,
        "shard": shard_of(event.key),
        "topic": topic,
        "type": event.type,
        "payload": event.encode().decode(),
        "created_at": event.time,
    }


def traced(event: E, settings: Settings, parent: Context | None) -> E:
    """``event`` created under ``parent`` (a context its stager kept: an HTTP request's, an SLA
    clock's), when tracing is on and there is one; else as it is (``outbox_row`` decides)."""
    if not tracing.active or parent is None:
        return event
    return tracing.stamped(event, topic_for(event, settings.topics), parent)


async def stage(session: AsyncSession, settings: Settings, *events: CloudEvent) -> None:
    """Add events to the outbox inside the caller's transaction; the caller commits."""
    await insert_rows(session, outbox, [outbox_row(e, settings) for e in events])
    staged_in(session)


def staged_in(session: AsyncSession) -> None:
    """The session's transaction writes outbox rows: its commit is a reason for a relay round.
    ``stage`` says so itself; a caller that writes its ``outbox_row``s in a statement of its own
    (intake's, with the inquiries) must say so."""
    STAGED.watch(session)


class StagedCommits:
    """How many transactions of this process that staged events have committed (a session that
    staged once counts each of its commits after). A relay woken after a commit runs a round
    only if this moved since its last round began; counted in the commit itself, before the
    committer wakes the relay."""

    KEY = "leadflow.outbox.staged"

    def __init__(self) -> None:
        self.commits = 0

    def watch(self, session: AsyncSession) -> None:
        if self.KEY not in session.info:
            session.info[self.KEY] = True
            event.listen(session.sync_session, "after_commit", self._committed)

    def _committed(self, _session: Session) -> None:
        self.commits += 1


STAGED = StagedCommits()
"""The process's count: a relay may be woken by any of its transactions' commits."""


class Relay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        settings: Settings,
        *,
        name: str = "relay",
        woken_by_commits: bool = True,
    ) -> None:
        """``woken_by_commits``: the process's commits wake this relay (``notify``), so its idle
        polls, which only find what other processes left, may grow apart (``_idle``); false for
        ``leadflow relay``, which nothing wakes."""
        self.sessions = sessions
        self.producer = producer
        self.settings = settings
        self.name = name
        self.wakeup = asyncio.Event()
        self._backoff = 0.0
        outbox_settings = settings.outbox
        base = outbox_settings.poll_interval_ms / 1000
        longest = outbox_settings.idle_poll_max_ms / 1000 if woken_by_commits else base
        self.poll = GrowingPoll(base, longest)
        self._staged_before_round = -1
        """``STAGED.commits`` when the last round began: what it could see."""
        self._requeued = False
        self._checked_over: tuple[object, ...] | None = None
        """The producer's open broker connections when the sentinel was last seen there."""
        self.oldest_pending: datetime | None = None
        """When the oldest event waiting was staged, as last looked up (``look_at_backlog``)."""
        # Read at each scrape: the age goes on growing between looks, and while the database
        # is away (when nothing can be published either).
        OUTBOX_OLDEST_AGE.labels(name).set_function(
            lambda: waited_s(self.oldest_pending, datetime.now(UTC))
        )

    def notify(self) -> None:
        """Called after a commit that staged events, to publish without waiting for the poll."""
        self.wakeup.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_watch = next_prune = next_look = 0.0
        while True:
            try:
                if loop.time() >= next_look:  # first: the age counts while the broker is away
                    await self.look_at_backlog()
                    next_look = loop.time() + BACKLOG_LOOK_INTERVAL_S
                if loop.time() >= next_watch:
                    await self.watch_broker()
                    next_watch = loop.time() + BROKER_WATCH_INTERVAL_S
                self._staged_before_round = STAGED.commits
                published = await self.publish_pending()
                if loop.time() >= next_prune:
                    await self.prune(datetime.now(UTC))
                    next_prune = loop.time() + 60
                self._backoff = 0.0
            except (asyncio.CancelledError, MissingTopics):
                raise  # topics that Leadflow may not create wait for someone: stop, say which
            except Exception as error:  # broker or database unavailable: back off, keep rows
                self._backoff = min(
                    max(self._backoff * 2, 0.05), self.settings.outbox.max_backoff_s
                )
                log.warning(
                    "%s: publish failed (%s); retrying in %.2fs",
                    self.name,
                    describe(error),
                    self._backoff,
                )
                await asyncio.sleep(self._backoff)
                continue
            if published:
                self.poll.found()
            if self._requeued:
                self._requeued = False
            elif published < self.settings.outbox.batch_size:
                await self._idle()

    async def _idle(self) -> None:
        """Until a commit in this process wakes the relay, or the poll is due. A relay woken by
        its process's commits polls only for what other processes left (a CLI command's events,
        a crashed replica's, a shard another relay held): each poll that finds nothing doubles
        the wait for the next, up to ``outbox.idle_poll_max_ms``; a wake-up or a round that
        published brings it back to ``outbox.poll_interval_ms``. Three idle service processes
        polled 30 times a second, over a quarter of an idle deployment's CPU.

        A wake-up after which no transaction of this process has committed staged events since
        the last round began (a consumer's commit that staged nothing: the webhooks consumer's,
        usually the handoff's) is no reason for a round: the relay waits on, for the same poll."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.poll.seconds
        while True:
            if not await woken(self.wakeup, max(due - loop.time(), 0)):
                self.wakeup.clear()
                self.poll.empty()
                return
            self.wakeup.clear()
            if STAGED.commits != self._staged_before_round:
                self.poll.found()
                return

    async def look_at_backlog(self) -> None:
        """Look up when the oldest event waiting was staged (one query, ``OLDEST_PENDING``)."""
        async with self.sessions() as session:
            self.oldest_pending = await session.scalar(OLDEST_PENDING)

    async def publish_pending(self) -> int:
        """Publish one batch from the shards this relay can lock; return how many went out."""
        async with self.sessions.begin() as session:
            owned = list((await session.scalars(LOCK_PENDING_SHARDS)).all())
            if not owned:
                return 0
            rows = await _pending_in(session, owned, self.settings.outbox.batch_size)
            if not rows:
                return 0
            lost = await self._lost_since_checked()
            if not lost:
                await self._send(rows)
                await _mark_published(session, [row[0] for row in rows], datetime.now(UTC))
        if lost:
            await self._requeue_retained()
            self._requeued = True
            return 0  # the next round, at once, publishes in seq order everything retained
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def _send(self, rows: Sequence[Sequence[Any]]) -> None:
        """Each partition's rows as batches, in ``seq`` order: a third of the CPU per event of
        ``producer.send`` one by one. A key goes to the partition the producer's own
        partitioner picks, so a key's order holds.

        Partitions are sent to at once, but a partition's batches one after another, each once
        the one before it is acknowledged: when a batch fails for good (aiokafka does not retry
        every error: ``UnknownError`` from a broker that restarted empty), none behind it on its
        partition goes out, and the round, published again from the first row, keeps the order
        (a batch that did land before the failed one lands again, which consumers deduplicate).
        Submitted all at once, the batches behind a failed one landed, and their events reached
        consumers before the failed batch's events did. (aiokafka sends one batch per partition
        per request anyway, so the next batch waits for little more than it did.)"""
        producer = self.producer
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], list[BatchBuilder]] = {}
        for _, topic, aggregate_id, payload in rows:
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            everyone = partitions[topic]
            key, value = aggregate_id.encode(), payload.encode()
            # Kafka's murmur2 of the key, as ``producer.send`` (and the Java client) place it.
            where = (topic, everyone[partition_of(key, len(everyone))])
            filling = batches.setdefault(where, [])
            if not filling or filling[-1].append(key=key, value=value, timestamp=None) is None:
                filling.append(batch := producer.create_batch())
                batch.append(key=key, value=value, timestamp=None)  # a first one always fits
        for filled in batches.values():
            for batch in filled:
                batch.close()  # nothing else joins it (``send`` could add to an open batch)
        # Every partition's chain runs to its end before the round fails: a retry must not
        # overtake a batch of this round still in flight.
        results = await asyncio.gather(
            *(self._send_in_turn(where, filled) for where, filled in batches.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _send_in_turn(self, where: tuple[str, int], batches: list[BatchBuilder]) -> None:
        topic, partition = where
        for batch in batches:
            await (await self.producer.send_batch(batch, topic, partition=partition))

    async def watch_broker(self) -> None:
        """Republish what the broker lost, even when nothing new waits to be published."""
        if await self._sentinel_missing():
            await self._requeue_retained()

    async def _lost_since_checked(self) -> bool:
        """Whether the broker lost its topics; asked of the broker only when the producer's
        connections are not all ones the last check went through."""
        if self._checked_over is not None:
            current = self._connections()
            if current and all(
                any(link is seen for seen in self._checked_over) for link in current
            ):
                return False
        return await self._sentinel_missing()

    def _connections(self) -> tuple[object, ...] | None:
        """The producer's open broker connections (aiokafka keeps them in ``_conns``); None when
        that cannot be told, and then every batch asks the broker."""
        conns = getattr(self.producer.client, "_conns", None)
        if not isinstance(conns, dict):
            return None
        return tuple(c for c in conns.values() if c.connected())

    async def _sentinel_missing(self) -> bool:
        # The connections open before the broker answered lead to that broker or to one that
        # is gone (where nothing can be published); one opened later may lead to a new one.
        before, self._checked_over = self._connections(), None
        present = (await self.producer.client.fetch_all_metadata()).topics()
        if not self.settings.kafka.create_topics:
            # Nothing here may create them (the first watch is at start-up): stop, naming all.
            if absent := [t for t in self.settings.topics.all() if t not in present]:
                raise MissingTopics(missing_topics_message(self.settings.kafka, absent))
        missing = self.settings.topics.sentinel not in present
        if not missing:
            self._checked_over = before
        return missing

    async def _requeue_retained(self) -> None:
        # Queue first, then recreate the sentinel: a crash in between only queues them twice.
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(outbox).where(outbox.c.published_at.is_not(None)).values(published_at=None)
            )
        created = await ensure_topics(self.settings.kafka, self.settings.topics.all())
        if rowcount(result):
            log.warning(
                "%s: broker lost topics %s; republishing %d retained events",
                self.name,
                created,
                rowcount(result),
            )
        OUTBOX_REPUBLISHED.inc(rowcount(result))

    async def prune(self, now: datetime) -> int:
        """Delete rows published longer ago than the retention window, ``outbox.batch_size`` per
        transaction (``shared.pruning``: every relay prunes, and two at once take different
        rows, neither waiting on the other)."""
        retention = pruning.Retention(
            name="outbox",
            table=outbox,
            key="seq",
            age="published_at",
            keep=timedelta(hours=self.settings.outbox.retention_hours),
        )
        batch = self.settings.outbox.batch_size
        return await pruning.prune(self.sessions, retention, now=now, batch=batch)


def waited_s(staged: datetime | None, now: datetime) -> float:
    """How long an event staged at ``staged`` has waited at ``now`` (0 for none)."""
    return 0.0 if staged is None else max((now - staged).total_seconds(), 0.0)


async def _pending_in(session: AsyncSession, owned: list[int], limit: int) -> Sequence[Any]:
    """A round's rows (seq, topic, aggregate_id, payload) from the shards locked, in seq order."""
    if session.get_bind().dialect.name != "postgresql":
        return (await session.execute(PENDING_IN, {"owned": owned, "limit": limit})).all()
    driver = await driver_connection(session)
    with translated(PENDING_IN_PG):
        return await driver.fetch(PENDING_IN_PG, owned, limit)


async def _mark_published(session: AsyncSession, seqs: list[int], now: datetime) -> None:
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(MARK_PUBLISHED, {"seqs": seqs, "now": now})
        return
    driver = await driver_connection(session)
    with translated(MARK_PUBLISHED_PG):
        await driver.execute(MARK_PUBLISHED_PG, seqs, now)
