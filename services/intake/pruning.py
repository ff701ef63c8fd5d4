"""Intake's retention sweeps (``shared.pruning``: batches, one short transaction each, safe with
replicas).

- Idempotency-Key records older than ``intake.idempotency_hours`` are never replayed (a reuse of
  the key replaces them), so they only take space: deleted every
  ``intake.idempotency_prune_interval_s``, ``intake.idempotency_prune_batch`` at a time.
- Every ``intake.retention_sweep_interval_s``: the lead history entries older than
  ``intake.history_retention_days`` are deleted (the lead and its stage times stay), and the
  raw bodies of inquiries older than ``intake.raw_retention_days`` are set to NULL (the
  normalised ``submission`` stays). 0 keeps them forever.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import IdempotencyRecord
from services.intake.settings import IntakeConfig, IntakeSettings, intake_config
from shared.models import Inquiry, LeadHistory, table_of
from shared.pruning import Retention, Sweeper, keep_for, prune
from shared.runtime import Runtime


def idempotency_retention(settings: IntakeSettings) -> Retention:
    return Retention(
        name="idempotency records",
        table=table_of(IdempotencyRecord),
        key="key",
        age="created_at",
        keep=timedelta(hours=settings.idempotency_hours),
    )


def lead_retentions(settings: IntakeSettings) -> list[Retention]:
    """The lead history entries, and the inquiries' raw bodies, past their windows."""
    return [
        Retention(
            name="lead history",
            table=table_of(LeadHistory),
            key="id",
            age="occurred_at",
            keep=keep_for(settings.history_retention_days),
        ),
        Retention(
            name="raw inquiry bodies",
            table=table_of(Inquiry),
            key="id",
            age="received_at",
            keep=keep_for(settings.raw_retention_days),
            clear=("raw",),
        ),
    ]


class IdempotencyPruner:
    """``prune`` once, or ``run`` forever."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: IntakeConfig) -> None:
        self.sessions = sessions
        self.settings = settings
        config = settings.intake
        self.sweeper = Sweeper(
            sessions,
            [idempotency_retention(config)],
            interval_s=config.idempotency_prune_interval_s,
            batch=config.idempotency_prune_batch,
        )

    async def run(self) -> None:
        await self.sweeper.run()

    async def prune(self, now: datetime) -> int:
        """Delete every record older than the replay window, batch by batch; how many went."""
        config = self.settings.intake
        retention = idempotency_retention(config)
        return await prune(self.sessions, retention, now=now, batch=config.idempotency_prune_batch)


def lead_sweeper(runtime: Runtime) -> Sweeper:
    config = intake_config(runtime.settings).intake
    return Sweeper(
        runtime.sessions,
        lead_retentions(config),
        interval_s=config.retention_sweep_interval_s,
        batch=config.retention_sweep_batch,
    )


def start_idempotency_pruner(runtime: Runtime) -> IdempotencyPruner:
    """The intake process's background sweep of expired Idempotency-Key records."""
    pruner = IdempotencyPruner(runtime.sessions, intake_config(runtime.settings))
    runtime.spawn(pruner.run(), name="idempotency-pruner")
    return pruner


def start_lead_pruner(runtime: Runtime) -> Sweeper:
    """The intake process's background sweep of old lead history and raw inquiry bodies."""
    sweeper = lead_sweeper(runtime)
    runtime.spawn(sweeper.run(), name="lead-pruner")
    return sweeper
