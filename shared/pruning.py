"""Retention: rows older than a window go (or lose a column), in batches, by a background sweep.

Each batch is one short transaction, so no lock is held for long and a sweep over a large
backlog never blocks the writers. Several replicas may sweep at once: on PostgreSQL a batch picks
its rows ``FOR UPDATE SKIP LOCKED``, so two sweeps take different rows and neither waits on the
other (nor on a writer holding a row); the rows one skips are the other's, or the next sweep's.
SQLite has one writer anyway (and no ``FOR UPDATE``: SQLAlchemy renders none there).

Batches take the oldest rows first: give the ``age`` column an index.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import rowcount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retention:
    """What one sweep removes: the rows of ``table`` whose ``age`` is older than ``keep`` (and
    that ``where`` selects), deleted; or, when ``clear`` names columns, those columns set to
    NULL and the rows kept. ``keep`` None: kept forever."""

    name: str
    table: Table
    key: str
    """The column a batch names its rows by (the primary key)."""
    age: str
    keep: timedelta | None
    where: ColumnElement[bool] | None = None
    clear: tuple[str, ...] = ()

    def condition(self, cutoff: datetime) -> ColumnElement[bool]:
        columns = self.table.c
        parts = [columns[self.age] < cutoff]
        if self.where is not None:
            parts.append(self.where)
        if self.clear:  # a cleared row is not taken again
            parts.append(or_(*(columns[name].is_not(None) for name in self.clear)))
        return and_(*parts)


def keep_for(days: float) -> timedelta | None:
    """A retention setting in days as a window: 0 means keep forever."""
    return timedelta(days=days) if days > 0 else None


async def prune(
    sessions: async_sessionmaker[AsyncSession], retention: Retention, *, now: datetime, batch: int
) -> int:
    """Every row older than the window, batch by batch; how many went (or were cleared)."""
    if retention.keep is None:
        return 0
    cutoff = now - retention.keep
    total = 0
    while True:
        done = await prune_batch(sessions, retention, cutoff=cutoff, batch=batch)
        total += done
        if done < batch:  # fewer: the rest is gone, or locked by another sweep that takes it
            return total


async def prune_batch(
    sessions: async_sessionmaker[AsyncSession],
    retention: Retention,
    *,
    cutoff: datetime,
    batch: int,
) -> int:
    """One batch, in a transaction of its own."""
    columns = retention.table.c
    condition = retention.condition(cutoff)
    doomed = (
        select(columns[retention.key])
        .where(condition)
        .order_by(columns[retention.age])  # every sweep locks in the same order: no deadlock
        .limit(batch)
        .with_for_update(skip_locked=True)  # not rendered on SQLite
    )
    # The condition again outside: a row another sweep changed after this one's snapshot is
    # judged as it is now (PostgreSQL re-reads a locked row before updating it).
    chosen = and_(columns[retention.key].in_(doomed.scalar_subquery()), condition)
    statement: Any
    if retention.clear:
        values = {name: null() for name in retention.clear}  # SQL NULL, not JSON null
        statement = update(retention.table).where(chosen).values(values)
    else:
        statement = delete(retention.table).where(chosen)
    async with sessions.begin() as session:
        return rowcount(await session.execute(statement))


class Sweeper:
    """``sweep`` each retention once, or ``run`` every ``interval_s`` forever. A retention that
    fails (the database away) waits for the next sweep and does not keep the others from theirs."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        retentions: Sequence[Retention],
        *,
        interval_s: float,
        batch: int,
    ) -> None:
        self.sessions = sessions
        self.retentions = list(retentions)
        self.interval_s = interval_s
        self.batch = batch

    async def run(self) -> None:
        while True:
            await self.sweep(datetime.now(UTC))
            await asyncio.sleep(self.interval_s)

    async def sweep(self, now: datetime) -> dict[str, int]:
        """Each retention pruned up to ``now``; how many rows each removed (a failed one: -1)."""
        done = {}
        for retention in self.retentions:
            try:
                done[retention.name] = await prune(
                    self.sessions, retention, now=now, batch=self.batch
                )
            except Exception as error:
                log.warning("%s sweep failed (%s)", retention.name, error.__class__.__name__)
                done[retention.name] = -1
                continue
            if done[retention.name]:
                log.info("%s: pruned %d rows", retention.name, done[retention.name])
        return done
