"""What the SLA monitor's process starts besides its health app: nothing yet (issue 17)."""

from __future__ import annotations

from shared.runtime import Runtime


def start_sla_monitor(runtime: Runtime) -> None:
    """No background work yet: no clock to keep, no event to consume."""
