"""The timer: fire the tiers of clocks that fell due, in batches, for as long as the process runs.

Timers are rows (``sla_clocks.next_due_at``), not process memory: a monitor that was down fires on
start what fell due meanwhile, each tier marked late with how late. Replicas sweep side by side:
each batch is claimed with ``SKIP LOCKED`` and fired in the transaction that records it (see
store.py). Between sweeps the loop sleeps until the earliest due time, at most
``sla.sweep_interval_ms``, or until a clock opens in this process (``wake``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.sla_monitor import store
from services.sla_monitor.clocks import fire
from services.sla_monitor.metrics import DUE_SOON, OPEN_CLOCKS, SWEEP_LAG
from services.sla_monitor.models import TOUCH_DAYS, SlaClock
from services.sla_monitor.settings import SlaConfig
from shared import tracing
from shared.events import CloudEvent
from shared.outages import report
from shared.outbox import stage, traced
from shared.waits import woken

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
COUNT_EVERY = timedelta(seconds=15)
DUE_SOON_WITHIN = timedelta(minutes=5)
RETRY_BROKEN = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Sweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: SlaConfig,
        *,
        on_fired: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions, self.settings = sessions, settings
        self.on_fired, self.clock = on_fired, clock
        self.woken = asyncio.Event()
        self.fired = 0
        """Tiers fired by this sweeper."""
        self.counted_at: datetime | None = None

    def wake(self) -> None:
        self.woken.set()

    async def sweep_once(self) -> int:
        """Fire one batch of due clocks; returns how many clocks it took."""
        now = self.clock()
        late_after = timedelta(seconds=self.settings.sla.late_after_s)
        events = []
        async with self.sessions.begin() as session:
            rows = await store.claim_due(session, now=now, limit=self.settings.sla.sweep_batch)
            if rows and rows[0].next_due_at is not None:
                SWEEP_LAG.set(max((now - rows[0].next_due_at).total_seconds(), 0.0))
            for row in rows:
                events += await self._fire(session, row, now=now, late_after=late_after)
            await stage(session, self.settings, *events)
        fired = len(events)
        self.fired += fired
        if fired:
            self.on_fired()
        return len(rows)

    async def _fire(
        self, session: AsyncSession, row: SlaClock, *, now: datetime, late_after: timedelta
    ) -> list[CloudEvent]:
        """The clock's due tiers; a clock that cannot fire (a bug, bad data) is logged and put
        off for ``RETRY_BROKEN`` rather than holding back every clock due after it."""
        try:
            events = fire(row, now=now, late_after=late_after)
        except Exception:
            log.exception("SLA clock %s (lead %s) cannot fire; retried later", row.id, row.lead_id)
            await session.refresh(row)
            row.next_due_at = now + RETRY_BROKEN
            return []
        if tracing.active and row.traceparent:  # in the trace of the event that started it
            origin = tracing.extracted(row.traceparent)
            events = [traced(event, self.settings, origin) for event in events]
        return events

    async def catch_up(self) -> int:
        """Sweep until nothing is due now (a restart's backlog); returns the clocks taken."""
        total = 0
        while taken := await self.sweep_once():
            total += taken
        return total

    async def housekeeping(self) -> None:
        """At most every ``COUNT_EVERY``: the gauges (a count scans the open clocks), and the
        kept responses that no clock counted within ``TOUCH_DAYS`` forgotten."""
        now = self.clock()
        if self.counted_at is not None and now - self.counted_at < COUNT_EVERY:
            return
        async with self.sessions.begin() as session:
            found = await store.counts(session, now=now, soon=now + DUE_SOON_WITHIN)
            await store.prune_touches(session, before=now - timedelta(days=TOUCH_DAYS))
        OPEN_CLOCKS.set(found["open"])
        DUE_SOON.set(found["due_soon"])
        self.counted_at = now

    async def run(self) -> None:
        while True:
            try:
                await self.catch_up()
                await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: try again after a pause
                report(log, "SLA sweep failed", error)
                await asyncio.sleep(self.settings.sla.sweep_interval_ms / 1000)

    async def _idle(self) -> None:
        limit = self.settings.sla.sweep_interval_ms / 1000
        self.woken.clear()  # before the query: a clock opened after it wakes the wait below
        async with self.sessions() as session:
            due = await store.earliest_due(session)
        await self.housekeeping()
        wait = limit if due is None else (due - self.clock()).total_seconds()
        if wait > 0:
            await woken(self.woken, min(wait, limit))
