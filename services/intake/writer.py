"""Group commit: concurrent requests share one transaction, and each is answered after it commits.

A request hands its arrival to a writer and waits. Each of a few writer tasks takes everything
waiting (up to ``max_batch``), stores it in one transaction and commits, then answers every request
of the batch. Under load, requests gather while the previous transaction commits. At moderate rates
a writer would take them one at a time (another writer is always free), and a transaction's fixed
cost (its round trips, the relay's round after each commit, and every later hop's smaller batches)
would be paid per lead: so when the queue runs dry, the gathering writer waits for the next
arrival as long as the recent arrival rate says one is due (three mean gaps between the last
``WINDOW`` arrivals), never past ``linger_ms`` after the batch's first, and no longer once it
holds ``linger_batch`` (what is already queued still joins): at those sizes a transaction's
fixed cost is spread thin, and a fast stream of requests is not held back. Clients that wait for
their answers before sending again (a closed loop) send nothing more until this batch is
answered: their burst's gaps are tiny, so the batch closes at once instead of lingering for
nothing; a lone request after a quiet spell is written at once; and when lone requests waited
for nothing twice in a row (one client posting one at a time looks like a steady stream),
there is no waiting for a second. One writer gathers at a time; the others write meanwhile.

If a batch fails, its arrivals are stored one by one, so a bad one fails alone and the others are
still answered 202 — after their commit; if the database is unavailable, every request of the
batch is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.schemas import LeadAccepted
from services.intake.settings import IntakeConfig
from services.intake.store import Arrival, store_inquiries
from shared import tracing
from shared.outages import unavailable

log = logging.getLogger(__name__)
Pending = tuple[Arrival, asyncio.Future[LeadAccepted]]
WINDOW = 64
"""Arrivals whose times give the recent rate."""
FRUITLESS_PAUSE_S = 1.0


class GroupCommitWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: IntakeConfig,
        *,
        spawn: Callable[..., asyncio.Task[None]],
        on_commit: Callable[[], None],
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.spawn = spawn
        self.on_commit = on_commit
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._gathering = asyncio.Lock()
        self._arrivals: deque[float] = deque(maxlen=WINDOW)
        self._fruitless = float("-inf")
        """When lone requests last waited for nothing twice in a row."""
        self._streak = 0
        self._started = False

    async def submit(self, arrival: Arrival) -> LeadAccepted:
        """Store the arrival durably and return the answer; raises what storing it raised."""
        if not self._started:
            self._started = True
            for index in range(self.settings.intake.writers):
                self.spawn(self._write_batches(), name=f"intake-writer-{index}")
        if tracing.active:  # the writer's task is not the request's: its span goes along
            arrival = replace(arrival, trace=tracing.current())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LeadAccepted] = loop.create_future()
        self._arrivals.append(loop.time())
        await self.queue.put((arrival, future))
        return await future

    async def _write_batches(self) -> None:
        while True:
            async with self._gathering:
                batch = await self._gather()
            batch = [(arrival, future) for arrival, future in batch if not future.cancelled()]
            if batch:
                await self._write(batch)

    async def _gather(self) -> list[Pending]:
        """What is waiting; then each next arrival while one is due: within three mean gaps of
        the recent arrivals, within ``linger_ms`` of this batch's first, and while the batch is
        smaller than ``linger_batch``. When lone requests waited for nothing twice in a row (a
        client posting one at a time, waiting for each answer, looks like a steady stream),
        there is no waiting for ``FRUITLESS_PAUSE_S``."""
        batch = [await self.queue.get()]
        intake = self.settings.intake
        limit, enough, linger = intake.max_batch, intake.linger_batch, intake.linger_ms / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while len(batch) < limit:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            if len(batch) >= enough:
                break  # what is queued joined; waiting for more would save little
            now = loop.time()
            gap, left = self._mean_gap(now), deadline - now
            if gap >= left or now - self._fruitless < FRUITLESS_PAUSE_S:
                break  # the next arrival is not due before the batch must go
            try:
                async with asyncio.timeout(min(3 * gap, left)):
                    batch.append(await self.queue.get())
            except TimeoutError:
                self._waited_for_nothing(alone=len(batch) == 1)
                break
            self._streak = 0
        return batch

    def _waited_for_nothing(self, *, alone: bool) -> None:
        """Twice in a row a lone request waited and nothing came: stop waiting for a while."""
        self._streak = self._streak + 1 if alone else 0
        if self._streak >= 2:
            self._fruitless, self._streak = asyncio.get_running_loop().time(), 0

    def _mean_gap(self, now: float) -> float:
        """The mean time between the recent arrivals, counting the quiet since the last one."""
        arrivals = self._arrivals
        if len(arrivals) < 2:
            return float("inf")
        return (max(now, arrivals[-1]) - arrivals[0]) / (len(arrivals) - 1)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            async with self.sessions.begin() as session:
                answers = await store_inquiries(
                    session, [arrival for arrival, _ in batch], settings=self.settings
                )
        except Exception as error:
            if len(batch) == 1 or unavailable(error):  # an outage fails each of them alike
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
            else:
                log.warning("a batch of %d inquiries failed; storing them one by one", len(batch))
                for pending in batch:
                    await self._write([pending])
            return
        self.on_commit()
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):  # that arrival's own problem (Idempotency-Key)
                future.set_exception(answer)
            else:
                future.set_result(answer)
