"""Deleting Idempotency-Key records once they can no longer be replayed.

A record older than ``intake.idempotency_hours`` is never replayed (a reuse of its key replaces
it), so it only takes space. The intake process deletes them every
``intake.idempotency_prune_interval_s``, ``intake.idempotency_prune_batch`` at a time, one short
transaction per batch so no lock is held for long. Several replicas may sweep at once: on
PostgreSQL each batch takes its rows ``FOR UPDATE SKIP LOCKED``, so two sweeps delete different
rows and neither waits on a claim that is renewing an expired key; SQLite has one writer anyway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import IdempotencyRecord
from services.intake.settings import IntakeConfig, intake_config
from shared.db import rowcount
from shared.models import table_of
from shared.runtime import Runtime

log = logging.getLogger(__name__)
records = table_of(IdempotencyRecord)


class IdempotencyPruner:
    """``prune`` once, or ``run`` forever."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: IntakeConfig) -> None:
        self.sessions = sessions
        self.settings = settings

    async def run(self) -> None:
        interval = self.settings.intake.idempotency_prune_interval_s
        while True:
            try:
                deleted = await self.prune(datetime.now(UTC))
                if deleted:
                    log.info("deleted %d expired idempotency records", deleted)
            except Exception as error:  # database away: the records wait for the next sweep
                log.warning("idempotency record sweep failed (%s)", error.__class__.__name__)
            await asyncio.sleep(interval)

    async def prune(self, now: datetime) -> int:
        """Delete every record older than the replay window, batch by batch; how many went."""
        cutoff = now - timedelta(hours=self.settings.intake.idempotency_hours)
        batch = self.settings.intake.idempotency_prune_batch
        total = 0
        while True:
            deleted = await self._delete_batch(cutoff, batch)
            total += deleted
            if deleted < batch:
                return total

    async def _delete_batch(self, cutoff: datetime, batch: int) -> int:
        expired = records.c.created_at < cutoff
        doomed = (
            select(records.c.key)
            .where(expired)
            .order_by(records.c.created_at)
            .limit(batch)
            .with_for_update(skip_locked=True)  # not rendered on SQLite
        )
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(records).where(records.c.key.in_(doomed.scalar_subquery()), expired)
            )
        return rowcount(result)


def start_idempotency_pruner(runtime: Runtime) -> IdempotencyPruner:
    """The intake process's background sweep of expired Idempotency-Key records."""
    pruner = IdempotencyPruner(runtime.sessions, intake_config(runtime.settings))
    runtime.spawn(pruner.run(), name="idempotency-pruner")
    return pruner
