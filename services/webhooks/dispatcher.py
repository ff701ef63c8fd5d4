"""The dispatcher: claims due messages, POSTs them signed (``sending``), settles each attempt.

HTTP happens outside any database transaction: claim (lease, commit) → POST → settle (commit).
A new message that can go at once skips the claim: the consumer leases it as it records it, in a
slot this dispatcher reserves (``reserve``), and hands it over after its commit (``accept``).
Concurrency is bounded per process and per endpoint: at most ``per_endpoint_concurrency``
requests to one endpoint at a time, and as many more of its messages leased ahead to follow them
(claims come in batches, not one per answer), so a slow or dead CRM holds at most twice
``per_endpoint_concurrency`` slots and never delays the others; its circuit breaker pauses it.
A 2xx frees its slot at once; the attempt is then settled in a group commit.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhooks.metrics import ATTEMPTS, DISABLED, LATENCY
from services.webhooks.queue import Claimed, claim
from services.webhooks.schedule import Verdict
from services.webhooks.sending import make_transport, send
from services.webhooks.settings import WebhooksConfig
from services.webhooks.settle import (
    Outcome,
    Settlement,
    count_exhausted,
    settle,
    settle_delivered,
    until_settled,
)
from shared.consumer import is_transient
from shared.outages import describe
from shared.waits import woken

log = logging.getLogger(__name__)

SETTLE_BATCH = 500


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: WebhooksConfig,
        *,
        on_disabled: Callable[[], None] = lambda: None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.config = settings.webhooks
        self.on_disabled = on_disabled
        self.rand = rand
        self.wakeup = asyncio.Event()
        self.in_flight: dict[UUID, int] = {}
        """Leased and not yet answered, per endpoint (waiting for a connection or being sent)."""
        self.connections: dict[UUID, asyncio.Semaphore] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[Claimed, Outcome, asyncio.Future[None]]] = []
        self._settler: asyncio.Task[None] | None = None
        self._transport: httpx.AsyncHTTPTransport | None = None
        """Set while ``run`` runs: only then are slots reserved for the consumer."""
        self.backlog: set[UUID] = set()
        """Endpoints whose due messages wait for a claim (a slot was refused): the consumer
        leases none of its new messages for them but claims their oldest in its transaction
        (``claim_backlog``) until a claim finds no more, so new messages do not overtake older
        ones."""
        self.queued: set[tuple[UUID, str]] = set()
        """(endpoint, lead) queues where the consumer committed a message without a lease: when
        a message of one of them is settled here, the next may be due (a claim is to look)."""

    @property
    def lease(self) -> timedelta:
        """How long a leased message is this process's to send: past its attempt's timeout, so
        a lease only expires when its holder is gone."""
        return timedelta(seconds=self.config.timeout_s + 30)

    @property
    def ready(self) -> bool:
        """Running: messages handed over now are sent."""
        return self._transport is not None

    def notify(self) -> None:
        """New messages were committed (or a delivery finished): look for due work now."""
        self.wakeup.set()

    def reserve(self, endpoint: UUID, *, half_open: bool) -> bool:
        """A slot for a message the consumer leases in its transaction, within the limits a
        claim keeps: the process's concurrency, ``per_endpoint_concurrency`` requests plus as
        many waiting per endpoint, one message at a time to a half-open circuit. The consumer
        gives it back (``unreserve``) or hands the message over (``accept``)."""
        if not self.ready or endpoint in self.backlog:
            return False
        cap = 1 if half_open else 2 * self.config.per_endpoint_concurrency
        taken = self.in_flight.get(endpoint, 0)
        if taken >= cap or self._free() <= 0:
            self.backlog.add(endpoint)
            return False
        self.in_flight[endpoint] = taken + 1
        return True

    async def claim_backlog(
        self, session: AsyncSession, endpoints: Collection[UUID], now: datetime
    ) -> list[Claimed]:
        """In the consumer's transaction: lease the oldest due messages of these backlogged
        endpoints, as many as they have room for (a claim without a transaction of its own,
        at the consumer's pace). The consumer hands them over (``accept``) after its commit."""
        backlogged = [e for e in endpoints if e in self.backlog]
        open_ = [e for e in backlogged if self._room(e) > 0]
        room = min(self._free(), sum(self._room(e) for e in open_))
        if not backlogged or room <= 0:
            return []
        with self._held() as taken:
            claimed = await self._lease(
                session, now, room, taken, refill=True, endpoints=backlogged
            )
        if len(claimed) < room:
            self._drained(open_, claimed)
        return claimed

    def _room(self, endpoint: UUID) -> int:
        return max(0, 2 * self.config.per_endpoint_concurrency - self.in_flight.get(endpoint, 0))

    def _take_slot(self, message: Claimed, taken: list[Claimed]) -> None:
        self.in_flight[message.subscription_id] = self.in_flight.get(message.subscription_id, 0) + 1
        taken.append(message)

    def unreserve(self, endpoint: UUID) -> None:
        self._free_slot(endpoint)

    def accept(self, leased: list[Claimed], *, waiting: Collection[tuple[UUID, str]] = ()) -> None:
        """Send messages the consumer leased (their slots reserved) and committed: no claim.
        Stopped meanwhile, it leaves them to their lease's expiry, like a crash would.
        ``waiting``: the (endpoint, lead) queues of messages it committed without a lease, for a
        claim to find now or once the message ahead of them is settled."""
        for message in leased:
            if self._transport is None:
                self._free_slot(message.subscription_id)
            else:
                self._start(self._transport, message)
        self.queued.update(waiting)
        if any(self._claimable(endpoint) for endpoint, _lead in waiting):
            self.wakeup.set()

    async def run(self) -> None:
        backoff = 0.0
        async with make_transport(self.config) as transport:
            self._transport = transport
            try:
                while True:
                    self.wakeup.clear()
                    try:
                        started = await self._dispatch_due(transport)
                        backoff = 0.0
                    except Exception as error:
                        if not is_transient(error):
                            raise
                        backoff = min(max(backoff * 2, 0.05), 5.0)
                        log.warning("webhooks: claim failed (%s); retrying", describe(error))
                        await asyncio.sleep(backoff)
                        continue
                    if not started or self._free() == 0:
                        await self._idle()
            finally:
                self._transport = None
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def _free(self) -> int:
        if len(self._outcomes) >= SETTLE_BATCH:
            return 0  # settling lags: take no more until it catches up
        return self.config.concurrency - sum(self.in_flight.values())

    async def _idle(self) -> None:
        await woken(self.wakeup, self.config.poll_interval_ms / 1000)

    async def _dispatch_due(self, transport: httpx.AsyncHTTPTransport) -> int:
        free = self._free()
        if free <= 0:
            return 0
        before, backlog = dict(self.in_flight), set(self.backlog)
        claimed = await asyncio.shield(self._claim(free))
        for message in claimed:
            self._start(transport, message)
        # An endpoint a claim found messages for may have more: its answers wake the claims
        # until one finds it drained (below, or a later claim).
        self.backlog.update(message.subscription_id for message in claimed)
        if self.backlog and len(claimed) < free:
            # Not one that joined the backlog meanwhile: this claim may not have seen its rows.
            open_ = [e for e in backlog if self._claimable_with(before.get(e, 0))]
            self._drained(open_, claimed)
        return len(claimed)

    def _drained(self, considered: Collection[UUID], claimed: list[Claimed]) -> None:
        """After a claim that was not cut short by its limit: an endpoint it had room for and
        found nothing for has no due message left to claim, unless it is full now (a consumer
        leased for it meanwhile). One it found some for may have more: its answers wake the
        next claim, until one finds nothing."""
        found = {message.subscription_id for message in claimed}
        for endpoint in considered:
            if endpoint not in found and self._room(endpoint) > 0:
                self.backlog.discard(endpoint)

    def _start(self, transport: httpx.AsyncHTTPTransport, message: Claimed) -> None:
        """Deliver ``message``, whose slot is already counted in ``in_flight``."""
        task = asyncio.create_task(self._deliver(transport, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _claim(self, free: int) -> list[Claimed]:
        """Lease due messages in a transaction of its own."""
        now = datetime.now(UTC)
        with self._held() as taken:
            async with self.sessions.begin() as session:
                return await self._lease(session, now, free, taken)

    async def _lease(
        self,
        session: AsyncSession,
        now: datetime,
        limit: int,
        taken: list[Claimed],
        **scope: Any,
    ) -> list[Claimed]:
        """``claim`` within this dispatcher's limits, each message's slot counted (in ``taken``)
        as it is chosen, before the lease is written, so the consumer's leases meanwhile see
        it."""
        return await claim(
            session,
            now=now,
            limit=limit,
            lease=self.lease,
            in_flight=self.in_flight,
            per_endpoint=self.config.per_endpoint_concurrency,
            threshold=self.config.breaker_failures,
            ahead=self.config.per_endpoint_concurrency,
            reserve=lambda message: self._take_slot(message, taken),
            **scope,
        )

    @contextmanager
    def _held(self) -> Iterator[list[Claimed]]:
        """The slots taken inside, given back if the block fails (the claim or its commit)."""
        taken: list[Claimed] = []
        try:
            yield taken
        except BaseException:
            for message in taken:
                self._free_slot(message.subscription_id)
            raise

    async def _deliver(self, transport: httpx.AsyncHTTPTransport, message: Claimed) -> None:
        released = False
        try:
            async with self._connection(message.subscription_id):
                outcome = await send(transport, message, self.config, datetime.now(UTC))
            ATTEMPTS.labels(outcome.verdict.value).inc()
            LATENCY.observe(outcome.latency_ms / 1000)
            if outcome.verdict is Verdict.DELIVERED and not message.half_open:
                # The endpoint answered: its slot takes the next message while this one settles
                # (still leased, so nobody sends it again; its lead's next message waits for the
                # settlement). Failures and probes hold the slot until the breaker has seen them.
                released = self._release(message)
            # A shutdown must not cut a settlement short: the attempt happened, log it.
            await asyncio.shield(self._settle(message, outcome))
        except asyncio.CancelledError:
            raise
        except Exception:  # one message's trouble must not stop the others; its lease expires
            log.exception("webhooks: delivery of message %s failed", message.id)
        finally:
            if not released:
                self._release(message)
            if self._next_may_be_due(message, delivered=released):
                self.wakeup.set()

    def _next_may_be_due(self, message: Claimed, *, delivered: bool) -> bool:
        """After ``message`` is settled: whether a claim may find its endpoint's next message
        now. Not after a plain delivery whose endpoint and lead have nothing waiting (the
        common case: the consumer handed the message over and its next ones come the same
        way); a claim then found nothing (at 300 deliveries/s, most claims)."""
        endpoint = message.subscription_id
        if not self._claimable(endpoint):
            return False
        queue = (endpoint, message.lead_id)
        if queue in self.queued:
            if delivered:
                self.queued.discard(queue)
            return True
        return not delivered or endpoint in self.backlog

    def _connection(self, endpoint: UUID) -> asyncio.Semaphore:
        """At most ``per_endpoint_concurrency`` requests to one endpoint at a time; the messages
        leased ahead wait here."""
        if endpoint not in self.connections:
            self.connections[endpoint] = asyncio.Semaphore(self.config.per_endpoint_concurrency)
        return self.connections[endpoint]

    def _release(self, message: Claimed) -> bool:
        self._free_slot(message.subscription_id)
        return True

    def _free_slot(self, endpoint: UUID) -> None:
        left = self.in_flight.get(endpoint, 1) - 1
        if left:
            self.in_flight[endpoint] = left
        else:  # nothing of this endpoint's is leased any more: nobody holds its semaphore
            self.in_flight.pop(endpoint, None)
            self.connections.pop(endpoint, None)
        if endpoint in self.backlog and self._claimable(endpoint):
            self.wakeup.set()

    def _claimable(self, endpoint: UUID) -> bool:
        """Whether a claim may now take messages for ``endpoint``. While it has more than
        ``per_endpoint_concurrency`` outstanding, ``claim`` skips it: an answer that leaves it
        so wakes nobody (at 300 deliveries/s to one endpoint, most claims came back empty and
        held up the ones that would not)."""
        return self._claimable_with(self.in_flight.get(endpoint, 0))

    def _claimable_with(self, outstanding: int) -> bool:
        return outstanding <= self.config.per_endpoint_concurrency

    async def _settle(self, message: Claimed, outcome: Outcome) -> None:
        """Group commit: outcomes that arrive while a batch commits go in the next batch, so one
        busy endpoint costs one transaction per batch, not one per delivery."""
        done = asyncio.get_running_loop().create_future()
        self._outcomes.append((message, outcome, done))
        if self._settler is None or self._settler.done():
            self._settler = asyncio.create_task(self._settle_batches())
        await done

    async def _settle_batches(self) -> None:
        while self._outcomes:
            batch, self._outcomes = self._outcomes[:SETTLE_BATCH], self._outcomes[SETTLE_BATCH:]
            try:
                results = await self._settle_together(batch)
            except Exception:  # isolate the one that fails; the others settle alone
                results = []
                for item in batch:
                    try:
                        results.extend(await self._settle_together([item]))
                    except Exception as error:
                        results.append(error)
            for (message, _outcome, done), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    done.set_exception(result)
                    continue
                count_exhausted(result)  # once committed: a retried settlement counts once
                if result.disabled:
                    DISABLED.inc()
                    log.warning("webhooks: subscription %s disabled", message.subscription_id)
                    self.on_disabled()
                done.set_result(None)

    async def _settle_together(
        self, batch: list[tuple[Claimed, Outcome, asyncio.Future[None]]]
    ) -> list[Settlement | Exception]:
        return await until_settled(
            self.sessions,
            lambda session: self._settle_in(session, batch, datetime.now(UTC)),
            who="webhooks",
        )

    async def _settle_in(
        self,
        session: AsyncSession,
        batch: list[tuple[Claimed, Outcome, asyncio.Future[None]]],
        now: datetime,
    ) -> list[Settlement | Exception]:
        """Endpoint by endpoint (locked in id order, so two dispatchers cannot deadlock): an
        endpoint whose attempts all succeeded settles in one go, any other attempt by attempt."""
        results: list[Settlement | Exception] = [Settlement()] * len(batch)
        by_endpoint: dict[UUID, list[int]] = {}
        for index, (message, _outcome, _done) in enumerate(batch):
            by_endpoint.setdefault(message.subscription_id, []).append(index)
        for endpoint in sorted(by_endpoint):
            indexes = by_endpoint[endpoint]
            if all(batch[i][1].verdict is Verdict.DELIVERED for i in indexes):
                pairs = [(batch[i][0], batch[i][1]) for i in indexes]
                await settle_delivered(session, pairs, now=now)
                continue
            for i in indexes:
                message, outcome, _done = batch[i]
                results[i] = await settle(
                    session, message, outcome, settings=self.settings, now=now, rand=self.rand()
                )
        return results
