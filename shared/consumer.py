"""Consumer base: at-least-once in, exactly-once effects.

For each batch: the batch's effects and its processed-event rows commit in one database
transaction; only then are the offsets committed (with a timeout: a lost commit means a redelivery,
which the processed-events table turns into a no-op). A message that keeps failing goes to the
dead-letter topic with its error and the partition moves on; an unavailable database or broker is
not the message's fault, so it is retried until it comes back and nothing is dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import orjson
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import pruning, tracing
from shared.config import Settings
from shared.db import driver_connection, insert_ignoring_conflicts, translated
from shared.events import Event, UndecodableEvent, UnknownEventType, decode
from shared.kafka import ensure_topics, make_consumer
from shared.metrics import BATCH_SECONDS, CONSUMER_LAG, DEAD_LETTERED, EVENTS_PROCESSED
from shared.models import ProcessedEvent, table_of
from shared.outages import describe, unavailable
from shared.shutdown import bounded

log = logging.getLogger(__name__)
processed = table_of(ProcessedEvent)
LANES = 4
"""Transactions applied at once for a backlog (records fetched at once: this many
``consumer.max_batch``); see ``_consume_in_lanes``."""
DEDUPE_PRUNE_BATCH = 5000
"""Records deleted per transaction by the dedupe retention (a lead leaves about 15: one per
consumer per event its handler acts on)."""
CLAIM = (
    "INSERT INTO processed_events (consumer, event_id, processed_at)"
    " SELECT $1, unnest($2::text[]), $3 ON CONFLICT DO NOTHING RETURNING event_id"
)


class Handler(Protocol):
    """Applies one event; it may also define ``handle_batch(events, *, session, now)``, which
    then receives each batch's not-yet-processed events at once, in order, and ``handles``, the
    event types it acts on (``handled``)."""

    async def __call__(self, event: Event, *, session: AsyncSession, now: datetime) -> None: ...


class NotReady(Exception):
    """The consumer cannot apply anything yet (scoring: no co-signed ruleset is active). Like an
    outage it is waited out, with backoff: the messages stay unconsumed, nothing dead-lettered."""


def is_transient(error: BaseException) -> bool:
    """Infrastructure trouble (retry until it passes), not a message that cannot be applied."""
    return isinstance(error, NotReady | KafkaError) or unavailable(error)


class _Assignments(ConsumerRebalanceListener):
    """Counts the group's assignments of partitions to this consumer. Offsets polled under one
    are committed only under the same one: after a rebalance they may name another log. A
    broker that restarted empty makes the group anew, and an offset polled from the old log,
    committed there, would make a consumer restarted later skip the new log's records up to
    it (the chaos run, issue 20)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.count += 1
        for partition in revoked:
            labels = (self.name, partition.topic, str(partition.partition))
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(*labels)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.count += 1


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        handler: Handler,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        settings: Settings,
        on_commit: Callable[[], None] | None = None,
        assigned: asyncio.Event | None = None,
        before_poll: Callable[[], Awaitable[object]] | None = None,
        fetch_max_wait_ms: int | None = None,
    ) -> None:
        """``fetch_max_wait_ms``: this consumer's, if not ``kafka.fetch_max_wait_ms``.
        ``before_poll``: awaited before each poll, so that work that follows this consumer's
        commits in the same process (scoring's routing) can hold it back until it has caught
        up; records already polled go on meanwhile."""
        self.name = name
        self.topics = list(topics)
        self.handler = handler
        self.sessions = sessions
        self.producer = producer
        self.settings = settings
        self.on_commit = on_commit or (lambda: None)
        self.before_poll = before_poll
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.group_id = f"{settings.topics.prefix}.{name}"
        self.assigned = assigned or asyncio.Event()
        self.lanes = LANES if sessions.kw["bind"].dialect.name == "postgresql" else 1
        self._lane_work: list[asyncio.Task[None] | None] = [None] * self.lanes
        """Each lane's latest work: its next poll's part waits for it."""
        self._polls: deque[asyncio.Task[None]] = deque()
        self._committed: dict[TopicPartition, int] = {}
        """The offsets last committed, for ``leadflow_consumer_lag``."""
        self.assignments = _Assignments(name)
        DEAD_LETTERED.labels(name)  # at 0 from the start: ``increase()`` sees the first one
        for outcome in ("applied", "ignored"):
            EVENTS_PROCESSED.labels(name, outcome)
        self.stale_commits = 0
        """Offset commits left out because the group reassigned the partitions after the poll
        (the records come again from the offsets committed before, and are deduplicated)."""
        """Polls in flight, oldest first: each is done when applied and its offsets committed."""

    async def run(self) -> None:
        # Never the sentinel topic: only the relay may create it (see shared.outbox).
        topics = self.settings.topics
        await self._retrying_transient(
            lambda: ensure_topics(self.settings.kafka, [*self.topics, topics.dead_letter])
        )
        consumer = await self._started()
        try:
            while True:
                if self.before_poll is not None:
                    await self.before_poll()
                batches = await consumer.getmany(
                    timeout_ms=200,
                    max_records=self.settings.consumer.max_batch * LANES,
                )
                polled_under = self.assignments.count
                if consumer.assignment():
                    self.assigned.set()
                    self._report_lag(consumer)
                if sum(map(len, batches.values())) <= self.settings.consumer.max_batch:
                    await self._drain()  # a key of this poll may have records still in a lane
                    await self._consume_together(consumer, batches, polled_under)
                    continue
                await self._consume_in_lanes(consumer, batches, polled_under)
        finally:
            for task in [*self._lane_work, *self._polls]:
                if task is not None:
                    task.cancel()
            await asyncio.gather(*self._polls, return_exceptions=True)
            # Offsets are committed poll by poll; nothing to lose if the goodbye never arrives.
            await bounded(consumer.stop(), f"{self.name}: consumer stop")

    async def _started(self) -> AIOKafkaConsumer:
        """A consumer connected to the broker, waiting for one that is down at start."""
        started: list[AIOKafkaConsumer] = []

        async def start() -> None:
            consumer = make_consumer(
                self.settings.kafka,
                group_id=self.group_id,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
            )
            consumer.subscribe(self.topics, listener=self.assignments)
            try:
                await consumer.start()
            except KafkaError:
                await bounded(consumer.stop(), f"{self.name}: consumer stop")
                raise  # a transient error: ``_retrying_transient`` tries a new one
            started.append(consumer)

        await self._retrying_transient(start)
        return started[0]

    async def _consume_together(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        polled_under: int,
    ) -> None:
        """A poll that fits one batch (the usual case below saturation: a few records on each of
        several partitions): one transaction, each partition's records in their order, and one
        offset commit for all. A transaction and a commit round trip per partition, in series,
        were most of a hop's latency at 100 leads/s."""
        if batches:
            await self.process([r for records in batches.values() for r in records])
            offsets = {p: r[-1].offset + 1 for p, r in batches.items()}
            await self._commit(consumer, offsets, polled_under)

    async def _consume_in_lanes(
        self,
        consumer: AIOKafkaConsumer,
        batches: dict[TopicPartition, list[ConsumerRecord]],
        polled_under: int,
    ) -> None:
        """A backlog: the poll's records are dealt by key into lanes applied at once, each lane
        in order, ``max_batch`` per transaction; the offsets are committed when every lane is
        done. A key (a lead) is in one lane, so a lead's events keep their order and concurrent
        transactions touch different leads: while one waits on the database, another evaluates.
        A lane whose batch fails falls back to one by one alone. (SQLite has one writer: one
        lane.)

        Polls overlap by one: a lane starts on the next poll as soon as it is done with this
        one (its work is chained, so its keys stay in order), while the others finish; each
        poll's offsets are committed once its lanes and every earlier poll are done. Waiting
        for the slowest lane of each poll left the process idle ~12% of a backlog."""
        lanes: list[list[ConsumerRecord]] = [[] for _ in range(self.lanes)]
        for records in batches.values():
            for record in records:
                lanes[zlib.crc32(record.key or b"") % self.lanes].append(record)
        work = []
        for index, records in enumerate(lanes):
            if records:
                after = self._lane_work[index]
                task = asyncio.create_task(self._apply_lane(records, after=after))
                self._lane_work[index] = task
                work.append(task)
        offsets = {p: r[-1].offset + 1 for p, r in batches.items()}
        earlier = self._polls[-1] if self._polls else None
        finish = self._finish(consumer, work, earlier, offsets, polled_under)
        self._polls.append(asyncio.create_task(finish))
        while len(self._polls) > 1:  # at most this poll and the one before in flight
            await self._polls.popleft()

    async def _finish(
        self,
        consumer: AIOKafkaConsumer,
        work: list[asyncio.Task[None]],
        earlier: asyncio.Task[None] | None,
        offsets: dict[TopicPartition, int],
        polled_under: int,
    ) -> None:
        await asyncio.gather(*work)
        if earlier is not None:
            await earlier
        await self._commit(consumer, offsets, polled_under)

    async def _drain(self) -> None:
        """Wait until every poll in flight is applied and committed."""
        while self._polls:
            await self._polls.popleft()

    async def _apply_lane(
        self, records: list[ConsumerRecord], *, after: asyncio.Task[None] | None = None
    ) -> None:
        if after is not None:
            await after  # this lane's part of the poll before
        step = self.settings.consumer.max_batch
        for start in range(0, len(records), step):
            await self.process(records[start : start + step])

    async def process(self, records: list[ConsumerRecord]) -> None:
        decoded: list[tuple[ConsumerRecord, Event]] = []
        for record in records:
            try:
                decoded.append((record, decode(record.value or b"")))
            except UnknownEventType:
                EVENTS_PROCESSED.labels(self.name, "ignored").inc()
            except UndecodableEvent as error:
                await self._dead_letter(record, error, attempts=1)
        if skipped := len(decoded) - len(decoded := handled(self.handler, decoded)):
            EVENTS_PROCESSED.labels(self.name, "skipped").inc(skipped)
        if not decoded:
            return
        with BATCH_SECONDS.labels(self.name).time():
            try:
                await self._retrying_transient(lambda: self._apply([e for _, e in decoded]))
            except Exception:
                log.warning(
                    "%s: batch of %d failed; applying one by one",
                    self.name,
                    len(decoded),
                    exc_info=True,
                )
                for record, event in decoded:
                    await self._apply_alone(record, event)

    async def _apply(self, events: list[Event]) -> None:
        if not tracing.active:
            await self._apply_traced(events, None)
            return
        # Each event's span lasts until the transaction is over, its commit included.
        with tracing.consuming(self.group_id, self.settings.topics) as spans:
            await self._apply_traced(events, spans)

    async def _apply_traced(self, events: list[Event], spans: tracing.Consuming | None) -> None:
        now = datetime.now(UTC)
        async with self.sessions.begin() as session:
            fresh = await self._claim(session, events, now)
            unseen = []
            for event in events:
                if str(event.id) in fresh:
                    fresh.discard(str(event.id))
                    unseen.append(event)
            if spans is not None:
                spans.start(unseen)  # a redelivered event, already applied, gets no span
            # A handler with ``handle_batch`` takes the batch at once (one query per table).
            handle_batch = getattr(self.handler, "handle_batch", None)
            if handle_batch is not None and unseen:
                await handle_batch(unseen, session=session, now=now)
            else:
                for event in unseen:
                    await self.handler(event, session=session, now=now)
        EVENTS_PROCESSED.labels(self.name, "applied").inc(len(events))
        self.on_commit()

    async def _claim(self, session: AsyncSession, events: list[Event], now: datetime) -> set[str]:
        """Record the events as processed; return the ids not processed before."""
        if session.get_bind().dialect.name == "postgresql":
            # One statement, the ids as one array: no per-row Bind/Execute, whatever the batch size
            driver = await driver_connection(session)
            with translated(CLAIM):
                ids = await driver.fetch(CLAIM, self.name, [str(e.id) for e in events], now)
            return {row[0] for row in ids}
        rows = [{"consumer": self.name, "event_id": str(e.id), "processed_at": now} for e in events]
        # executemany of one cached statement: ``.values(rows)`` would compile anew per batch size
        statement = insert_ignoring_conflicts(session, processed).returning(processed.c.event_id)
        return set(await session.scalars(statement, rows))

    async def _apply_alone(self, record: ConsumerRecord, event: Event) -> None:
        attempts = self.settings.consumer.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                await self._retrying_transient(lambda: self._apply([event]))
                return
            except Exception as error:
                if attempt == attempts:
                    await self._dead_letter(record, error, attempts=attempt)
                    return
                await asyncio.sleep(self.settings.consumer.retry_backoff_s * attempt)

    async def _retrying_transient(self, action: Callable[[], Awaitable[object]]) -> None:
        backoff = 0.05
        while True:
            try:
                await action()
                return
            except Exception as error:
                if not is_transient(error):
                    raise
                log.warning("%s: %s; retrying in %.2fs", self.name, describe(error), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _dead_letter(
        self, record: ConsumerRecord, error: BaseException, *, attempts: int
    ) -> None:
        raw = record.value or b""
        try:
            payload, encoding = raw.decode(), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(raw).decode(), "base64"
        letter = {
            "consumer": self.name,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": (record.key or b"").decode(errors="replace"),
            "error": f"{error.__class__.__name__}: {error}"[:4000],
            "attempts": attempts,
            "failed_at": datetime.now(UTC).isoformat(),
            "payload": payload,
            "payload_encoding": encoding,
        }
        await self._retrying_transient(lambda: self._send_letter(orjson.dumps(letter), record.key))
        DEAD_LETTERED.labels(self.name).inc()
        log.error(
            "%s: dead-lettered %s[%d]@%d: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            letter["error"],
        )

    async def _send_letter(self, value: bytes, key: bytes | None) -> None:
        await self.producer.send_and_wait(self.settings.topics.dead_letter, value, key=key)

    def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            done = self._committed.get(partition)
            if end is not None and done is not None:
                lag = CONSUMER_LAG.labels(self.name, partition.topic, str(partition.partition))
                lag.set(max(end - done, 0))

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], polled_under: int
    ) -> None:
        if self.assignments.count != polled_under:
            self.stale_commits += 1
            log.info("%s: partitions reassigned since the poll; offsets not committed", self.name)
            return
        try:
            async with asyncio.timeout(self.settings.kafka.commit_timeout_s):
                await consumer.commit(offsets)
            self._committed.update(offsets)
        except (TimeoutError, KafkaError) as error:
            # Effects are already committed; a redelivery of this batch is deduplicated.
            log.warning("%s: offset commit for %s failed: %r", self.name, list(offsets), error)


def handled(
    handler: Handler, decoded: list[tuple[ConsumerRecord, Event]]
) -> list[tuple[ConsumerRecord, Event]]:
    """The events of a handler's ``handles`` types, or every one if it has none. The others are
    neither recorded as processed nor handed to it: with no effect, a redelivery of one changes
    nothing, and a batch of them alone takes no transaction. (The SLA topic's routing consumer
    acts on escalations only; before, it recorded every SLA event, as the other consumers did
    theirs: about 25 rows a lead.)"""
    types = getattr(handler, "handles", None)
    return decoded if types is None else [(r, e) for r, e in decoded if isinstance(e, types)]


def dedupe_retention(settings: Settings) -> pruning.Retention:
    """The consumers' records of applied events older than ``consumer.dedupe_retention_days``.
    A batch names its rows by event id: a record of the same event by another consumer, as
    old, goes with it."""
    return pruning.Retention(
        name="processed_events",
        table=processed,
        key="event_id",
        age="processed_at",
        keep=pruning.keep_for(settings.consumer.dedupe_retention_days),
    )


def dedupe_sweeper(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> pruning.Sweeper:
    return pruning.Sweeper(
        sessions,
        [dedupe_retention(settings)],
        interval_s=settings.consumer.retention_sweep_interval_s,
        batch=DEDUPE_PRUNE_BATCH,
    )
