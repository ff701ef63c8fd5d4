"""The ops board's live updates: server-sent events of the clocks that changed.

Each stream polls the database about once a second for the clocks whose ``updated_at`` advanced,
so a change made by any replica (a tier fired by the sweep, an acknowledgement, a clock opened
by the consumer) reaches every open board; nothing lives only in one process's memory.

``updated_at`` is the writing transaction's own "now", and the row becomes visible only when
that transaction commits, possibly after a poll that already looked past that time. So each
poll looks back ``OVERLAP`` before the newest change it saw, and skips what it has sent already
(by id and ``updated_at``). More changes than one batch holds are read page by page (keyset on
``updated_at``, ``id``), so a sweep that fired thousands of clocks in one instant is sent whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from services.sla_monitor import store
from services.sla_monitor.api import view
from services.sla_monitor.board_view import row_of
from services.sla_monitor.models import SlaClock
from shared.outages import unavailable
from shared.runtime import Runtime

POLL_S = 1.0
HEARTBEAT_S = 15.0
OVERLAP = timedelta(seconds=10)
BATCH = 500
RETRY_MS = 2000
"""How long the browser waits before it reconnects a stream that broke."""
_LOWEST = UUID(int=0)


class Changes:
    """Where the next poll starts, and which changes were sent (to send each once)."""

    def __init__(self, start: datetime) -> None:
        self.newest = start
        self.after: tuple[datetime, UUID] = (start - OVERLAP, _LOWEST)
        self.sent: dict[UUID, datetime] = {}

    def fresh(self, rows: list[SlaClock], *, full: bool) -> list[SlaClock]:
        """The rows not sent yet; moves the start of the next poll on."""
        new = [row for row in rows if self.sent.get(row.id) != row.updated_at]
        for row in rows:
            self.sent[row.id] = row.updated_at
            self.newest = max(self.newest, row.updated_at)
        if full:  # more to read at once: the next page
            self.after = (rows[-1].updated_at, rows[-1].id)
        else:
            self.after = (self.newest - OVERLAP, _LOWEST)
            self.sent = {k: v for k, v in self.sent.items() if v >= self.after[0]}
        return new


def last_event_start(last_event_id: str | None, now: datetime) -> datetime:
    """Where a reconnecting browser's stream picks up (its ``Last-Event-ID``), at most an hour
    back; a new stream starts now."""
    try:
        start = datetime.fromisoformat(last_event_id or "")
    except ValueError:
        return now
    if start.tzinfo is None:
        return now
    return min(max(start, now - timedelta(hours=1)), now)


class LiveFeed:
    """One browser's stream of changed clocks, filtered like its board."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        filters: dict[str, Any],
        until: datetime,
        poll_s: float = POLL_S,
    ) -> None:
        self.runtime, self.filters, self.until, self.poll_s = runtime, filters, until, poll_s

    async def events(
        self,
        disconnected: Callable[[], Awaitable[bool]],
        *,
        start: datetime,
        signed_in: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[str]:
        """SSE text: ``clock`` events and heartbeat comments, until the browser goes away, its
        session expires, or (checked at each heartbeat) ``signed_in`` says its key was revoked;
        then it reconnects, is refused, and the page asks to sign in."""
        yield f"retry: {RETRY_MS}\n\n"
        changes = Changes(start)
        loop = asyncio.get_running_loop()
        beat = loop.time()
        while not await disconnected() and datetime.now(UTC) < self.until:
            for message in await self._poll(changes):
                yield message
            if loop.time() - beat >= HEARTBEAT_S:
                beat = loop.time()
                if signed_in is not None and not await signed_in():
                    return
                yield ": heartbeat\n\n"
            await asyncio.sleep(self.poll_s)

    async def _poll(self, changes: Changes) -> list[str]:
        messages: list[str] = []
        try:
            async with self.runtime.sessions() as session:
                full = True
                while full:
                    rows = await store.changed_since(
                        session, changes.after, filters=self.filters, limit=BATCH
                    )
                    full = len(rows) == BATCH
                    now = datetime.now(UTC)
                    fresh = changes.fresh(rows, full=full)
                    messages += [event(row, now, changes.newest) for row in fresh]
        except Exception as error:  # the database is away: the next poll tries again
            if not unavailable(error):
                raise
        return messages


def event(row: SlaClock, now: datetime, cursor: datetime) -> str:
    """One ``clock`` event: the clock (``ClockView``) and its board row, as JSON."""
    clock = view(row, now)
    data = {"clock": clock.model_dump(mode="json"), "row": row_of(clock).to_json()}
    return f"id: {cursor.isoformat()}\nevent: clock\ndata: {orjson.dumps(data).decode()}\n\n"
