"""Qualified leads waiting for their first owner: marked by scoring, routed right after its commit.

Scoring's transaction marks the leads it qualifies ``routing_status = 'pending'`` (durable, in the
same transaction as ``lead.mql``); the scoring process's ``PendingRouter``, woken by each scoring
commit that marked some, routes them in a short transaction of its own. Routing used to run
inside each scoring transaction and hold its locks (services/routing/txn.py) until that
transaction committed, so scoring's concurrent lanes queued on them for hundreds of
milliseconds; now they are held only while routing.

Nothing is lost on a crash: a pending lead is picked up by the next round of any scoring process
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas take different leads). ``lead.routed``
still follows ``lead.mql`` for a lead: it is staged in a later transaction.

What follows routing in the same transaction (``AfterRouting``: the handoff's ``lead.qualified``,
wired by the composition root) runs in the round, for the leads it gave an owner or a queue; if it
fails, the round is done again without it, and the consumers of ``lead.routed`` and
``lead.queued`` do that work instead. The round's routing locks are then held while it runs
too (a few reads and one insert per table for the batch): routers of other pools never wait for
them, and a router of the same pool waits that much longer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing import store
from services.routing.assign import RoutingDecision, route_leads
from shared.config import Settings
from shared.consumer import is_transient
from shared.db import after_commit, among, driver_connection, rowcount, translated
from shared.models import Lead, table_of
from shared.outages import report
from shared.waits import woken

PENDING = "pending"
FAILED = "failed"
"""A qualified lead whose routing raised an error (see the log); ``route-pending`` retries it."""
QUALIFIED = frozenset({"mql", "sal", "sql"})
"""Reaching one of these routes a lead that has no owner yet (an MQL, usually)."""
BATCH = 1000
POLL_INTERVAL_S = 1.0
"""Between rounds with nothing to wake it: picks up what a crashed process left pending."""
leads_t = table_of(Lead)
AfterRouting = Callable[[AsyncSession, list[UUID], datetime], Awaitable[object]]
"""Work in a round's transaction on the leads it placed (an owner or a queue): ``(session, lead
ids, now)``."""
log = logging.getLogger(__name__)


class AfterRoutingFailed(Exception):
    """``after`` raised (its error is the cause): the round's routing itself was sound."""


MARK_PENDING = (  # the batch's ids as one array: one statement text whatever their number
    "UPDATE leads SET routing_status = 'pending' WHERE id = ANY($1::uuid[])"
    " AND (routing_status IS NULL OR routing_status = 'closed') AND is_test IS false"
    # routing is on (``store.routing_off``), in the same round trip
    " AND EXISTS (SELECT FROM routing_state WHERE id = 1 AND directory_token IS NOT NULL)"
    " AND EXISTS (SELECT FROM routing_teams)"
)


async def mark_pending(
    session: AsyncSession, lead_ids: Sequence[UUID], *, wake: Callable[[], None] | None = None
) -> int:
    """In the caller's (scoring's) transaction: these leads qualified and wait for an owner.
    Leads routed already, test leads, and every lead while routing is off (no team) are left
    as they are. Returns how many were marked; when some were, ``wake`` (a ``PendingRouter``'s
    ``notify``) is called once the transaction commits, so that a commit that marked nothing
    costs the router no round."""
    marked = await _mark(session, sorted(set(lead_ids))) if lead_ids else 0
    if marked and wake is not None:
        after_commit(session, wake)
    return marked


async def _mark(session: AsyncSession, lead_ids: list[UUID]) -> int:
    if session.get_bind().dialect.name == "postgresql":
        driver = await driver_connection(session)
        with translated(MARK_PENDING):
            status = await driver.execute(MARK_PENDING, lead_ids)
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE <rows>"
    if await store.routing_off(session):
        return 0
    status = leads_t.c.routing_status
    result = await session.execute(
        update(leads_t)
        .where(
            among(session, leads_t.c.id, lead_ids),
            or_(status.is_(None), status == "closed"),
            leads_t.c.is_test.is_(False),
        )
        .values(routing_status=PENDING)
    )
    return rowcount(result)


async def route_pending(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime,
    limit: int = BATCH,
    after: AfterRouting | None = None,
) -> tuple[int, list[RoutingDecision]]:
    """One transaction: up to ``limit`` pending leads, oldest qualification first, routed, and
    ``after`` run on the leads placed. Returns how many pending leads it took and the decisions.
    A lead no longer qualified (closed meanwhile), or every lead while routing is off, is simply
    no longer pending.

    If ``after`` fails (the database being away aside), the round is done again without it
    (logged with the error). If the round fails for another reason, its leads are routed one
    by one, without ``after``, and a lead that cannot be routed is marked ``failed`` (logged
    with the error; ``leadflow owners route-pending`` retries it), so that it does not hold up
    the others."""
    try:
        try:
            return await _round(sessions, settings, now=now, limit=limit, after=after)
        except AfterRoutingFailed:
            log.error(
                "the work after routing failed; this round is routed without it (the consumers "
                "of its lead.routed and lead.queued do that work)",
                exc_info=True,
            )
            return await _round(sessions, settings, now=now, limit=limit)
    except Exception as error:
        if is_transient(error):
            raise
        log.warning("routing round failed; routing its leads one by one", exc_info=True)
    async with sessions() as session:
        ids = list(await session.scalars(_pending(limit, locked=False)))
    decisions: list[RoutingDecision] = []
    for lead_id in ids:
        try:
            decisions += (await _round(sessions, settings, now=now, limit=1, only=lead_id))[1]
        except Exception as error:
            if is_transient(error):
                raise
            log.error("lead %s cannot be routed; marked failed", lead_id, exc_info=True)
            async with sessions.begin() as session:
                failed = update(leads_t).where(
                    leads_t.c.id == lead_id, leads_t.c.routing_status == PENDING
                )
                await session.execute(failed.values(routing_status=FAILED))
    return len(ids), decisions


def _pending(limit: int, *, locked: bool = True, only: UUID | None = None) -> Select[Any]:
    query = select(leads_t.c.id, leads_t.c.stage).where(leads_t.c.routing_status == PENDING)
    if only is not None:
        query = query.where(leads_t.c.id == only)
    query = query.order_by(leads_t.c.stage_changed_at, leads_t.c.id).limit(limit)
    return query.with_for_update(skip_locked=True) if locked else query


async def _round(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime,
    limit: int,
    only: UUID | None = None,
    after: AfterRouting | None = None,
) -> tuple[int, list[RoutingDecision]]:
    async with sessions.begin() as session:
        rows = (await session.execute(_pending(limit, only=only))).all()
        if not rows:
            return 0, []
        off = await store.routing_off(session)
        ready = [] if off else [row.id for row in rows if row.stage in QUALIFIED]
        if stale := sorted({row.id for row in rows} - set(ready)):
            await session.execute(
                update(leads_t)
                .where(among(session, leads_t.c.id, stale))
                .values(routing_status=None)
            )
        decisions = (
            await route_leads(session, ready, now=now, settings=settings, routing_on=True)
            if ready
            else []
        )
        placed = [d.lead_id for d in decisions if d.event_type is not None]
        if after is not None and placed:
            try:
                await after(session, placed, now)
            except Exception as error:
                if is_transient(error):
                    raise
                raise AfterRoutingFailed from error
    return len(rows), decisions


class PendingRouter:
    """The scoring process's routing of what its (or a crashed replica's) scoring qualified."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        on_routed: Callable[[], None] = lambda: None,
        after: AfterRouting | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.after = after
        self.on_routed = on_routed
        """Called after a round that staged routing events (the relay's cue)."""
        self.wakeup = asyncio.Event()
        self.caught_up = asyncio.Event()
        """Clear while the last round was full (more leads pending than one round takes):
        scoring's consumer waits for it before polling more (``EventConsumer.before_poll``),
        so that a backlog does not leave qualified leads waiting for an owner behind it."""
        self.caught_up.set()

    def notify(self) -> None:
        """Called after a scoring commit that marked leads pending (``mark_pending``'s ``wake``)."""
        self.wakeup.set()

    async def _read_directory(self) -> None:
        """Into the process's cache before the first round: reading and compiling it (accounts,
        rules) is a one-off that would otherwise lengthen the first round of routed leads."""
        try:
            async with self.sessions() as session:
                await store.routing_off(session)
        except Exception as error:  # the database is away: the first round reads it
            report(log, "reading the routing directory failed", error)

    async def run(self) -> None:
        await self._read_directory()
        backoff = 0.0
        while True:
            self.wakeup.clear()
            try:
                taken, decisions = await route_pending(
                    self.sessions, self.settings, now=datetime.now(UTC), after=self.after
                )
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: the leads stay pending; try again
                self.caught_up.set()  # never hold scoring back on routing's trouble
                backoff = min(max(backoff * 2, 0.05), self.settings.outbox.max_backoff_s)
                report(log, f"routing pending leads failed; retry in {backoff:.2f}s", error)
                await asyncio.sleep(backoff)
                continue
            full = taken >= BATCH
            if full:
                self.caught_up.clear()
            else:
                self.caught_up.set()
            if decisions:
                self.on_routed()
            if not full:
                await woken(self.wakeup, POLL_INTERVAL_S)
