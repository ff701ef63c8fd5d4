"""What the intake process starts besides its HTTP app: the sweeper of pending Meta fetches and
the pruner of expired Idempotency-Key records."""

from __future__ import annotations

from services.intake.platforms.api import start_fetch_sweeper
from services.intake.pruning import start_idempotency_pruner
from shared.runtime import Runtime


def start_intake(runtime: Runtime) -> None:
    start_fetch_sweeper(runtime)
    start_idempotency_pruner(runtime)
