"""What a running service holds: settings, engine, sessions, producer and relay. Wiring only."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnknownError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.config import Settings
from shared.consumer import EventConsumer, Handler, dedupe_sweeper
from shared.db import make_engine, make_sessions, ping
from shared.kafka import make_producer
from shared.outbox import Relay
from shared.shutdown import bounded

log = logging.getLogger(__name__)


class IdempotenceRefused(RuntimeError):
    """``kafka.idempotence`` is on and the broker cannot give the producer an id."""


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer | None = None
    relay: Relay | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    consumers: dict[str, asyncio.Event] = field(default_factory=dict)
    stopped: dict[str, BaseException | None] = field(default_factory=dict)
    """Background tasks that ended on their own (with their error): each should run until the
    process stops, so readiness fails while any is here, and ``on_stopped`` is told."""
    on_stopped: Callable[[str], None] = field(default=lambda _name: None)
    relaying: bool = False
    """``start_relay`` was called: this process publishes the outbox, so it needs the broker."""
    _producer_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        engine = make_engine(settings.db)
        return cls(settings=settings, engine=engine, sessions=make_sessions(engine))

    async def connected_producer(self) -> AIOKafkaProducer:
        """The shared producer, connecting first if need be; waits out a broker that is down."""
        async with self._producer_lock:
            backoff = 0.1
            while self.producer is None:
                producer = make_producer(self.settings.kafka)
                try:
                    await producer.start()
                    self.producer = producer
                except KafkaError as error:
                    await producer.stop()
                    if isinstance(error, UnknownError) and self.settings.kafka.idempotence:
                        # Connected, then InitProducerId refused: a retry gets the same answer.
                        raise IdempotenceRefused(
                            "the broker refused the idempotent producer (InitProducerId); "
                            "set LEADFLOW_KAFKA__IDEMPOTENCE=false for a broker without it "
                            "(the embedded one: `leadflow broker`)"
                        ) from error
                    log.warning("broker unavailable (%s); retrying in %.1fs", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.settings.outbox.max_backoff_s)
            return self.producer

    def start_relay(self, name: str = "relay", *, woken_by_commits: bool = True) -> None:
        """Publish the outbox in the background; intake keeps accepting while the broker is away.
        ``woken_by_commits``: false for a process whose commits stage no events (``leadflow
        relay``), so that its relay keeps polling at ``outbox.poll_interval_ms``."""

        async def relay() -> None:
            self.relay = Relay(
                self.sessions,
                await self.connected_producer(),
                self.settings,
                name=name,
                woken_by_commits=woken_by_commits,
            )
            await self.relay.run()

        self.relaying = True
        self.spawn(relay(), name=name)

    def start_consumer(
        self,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        name: str | None = None,
        on_commit: Callable[[], None] | None = None,
        before_poll: Callable[[], Awaitable[object]] | None = None,
        fetch_max_wait_ms: int | None = None,
    ) -> None:
        """Consume ``topics`` in the background as consumer ``group``; readiness waits for its
        partitions, and what it stages wakes the relay (or ``on_commit``)."""
        task_name = name or group
        if not self.consumers:  # the process's first consumer: its records are pruned too
            self.spawn(dedupe_sweeper(self.sessions, self.settings).run(), name="dedupe-retention")
        assigned = self.consumers[task_name] = asyncio.Event()

        async def consume() -> None:
            consumer = EventConsumer(
                name=group,
                topics=topics,
                handler=handler,
                sessions=self.sessions,
                producer=await self.connected_producer(),
                settings=self.settings,
                on_commit=on_commit or self.notify_relay,
                assigned=assigned,
                before_poll=before_poll,
                fetch_max_wait_ms=fetch_max_wait_ms,
            )
            await consumer.run()

        self.spawn(consume(), name=task_name)

    def notify_relay(self) -> None:
        if self.relay is not None:
            self.relay.notify()

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``work`` for as long as the process runs: it waits out outages itself, so its end
        (an error it could not handle, or a return) means this process no longer does its job.

        It runs in a context of its own, not a copy of the caller's: work spawned while a request
        or a batch is handled (intake's writers) must not go on taking that request's or batch's
        trace (``shared.tracing``) for the current one."""
        task = asyncio.create_task(work, name=name, context=contextvars.Context())
        task.add_done_callback(self._ended)
        self.tasks.append(task)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.critical("background task %s stopped", task.get_name(), exc_info=error)
        else:
            log.critical("background task %s returned", task.get_name())
        self.stopped[task.get_name()] = error
        self.on_stopped(task.get_name())

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, Callable[[], Awaitable[Any]]] = {"database": lambda: ping(self.engine)}
        if self.producer is not None:
            checks["broker"] = self.producer.client.fetch_all_metadata
        elif self.relaying or self.consumers:  # they will connect; until then, not ready
            checks["broker"] = self._not_connected
        for name, assigned in self.consumers.items():
            checks[name] = partial(_assigned, assigned)
        results = {}
        if self.stopped:
            results["tasks"] = "stopped: " + ", ".join(
                f"{name} ({'returned' if error is None else error.__class__.__name__})"
                for name, error in self.stopped.items()
            )
        for name, check in checks.items():
            try:
                async with asyncio.timeout(2.0):
                    await check()
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable: {error.__class__.__name__}"
        return results

    async def _not_connected(self) -> None:
        raise ConnectionError("not connected yet")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.producer is not None:
            # stop() flushes what is still buffered and can wait on a broker that is gone; every
            # event it holds is still in the outbox (marked published only once acknowledged).
            await bounded(self.producer.stop(), "producer stop")
            self.producer = None
        await self.engine.dispose()


async def _assigned(assigned: asyncio.Event) -> None:
    if not assigned.is_set():
        raise ConnectionError("no partitions assigned yet")
