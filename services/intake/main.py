"""What the intake process starts besides its HTTP app: the sweeper of pending Meta fetches and
the pruners of expired Idempotency-Key records and of old lead history and raw inquiry bodies."""

from __future__ import annotations

from services.intake.platforms.api import start_fetch_sweeper
from services.intake.pruning import start_idempotency_pruner, start_lead_pruner
from shared.runtime import Runtime


def start_intake(runtime: Runtime) -> None:
    start_fetch_sweeper(runtime)
    start_idempotency_pruner(runtime)
    start_lead_pruner(runtime)
