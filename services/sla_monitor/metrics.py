"""The SLA monitor's Prometheus metrics (``GET /metrics`` of the process that runs the sweep)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Gauge

from services.sla_monitor.ladder import Step
from shared.events import ClockKind

OPEN_CLOCKS = Gauge("leadflow_sla_open_clocks", "Open SLA clocks (refreshed by the sweep)")
DUE_SOON = Gauge("leadflow_sla_due_soon", "Open clocks with a tier due within the next 5 minutes")
TIERS_FIRED = Counter(
    "leadflow_sla_tiers_fired_total",
    "Ladder tiers fired: warning, breach (the breaches) and escalate (the escalations)",
    ["step"],
)
CLOCKS_STARTED = Counter(
    "leadflow_sla_clocks_started_total",
    "SLA clocks started, by kind (pickup, first_response, acceptance, follow_up): the breaches'"
    " denominator",
    ["clock"],
)
SWEEP_LAG = Gauge(
    "leadflow_sla_sweep_lag_seconds",
    "How late the earliest tier of the last sweep fired after its due time",
)
# Exported at 0 from the start: Prometheus's increase() takes a series' first sample as its
# start, so a series born at its first increment would hide that one.
for _step in get_args(Step):
    TIERS_FIRED.labels(_step)
for _kind in get_args(ClockKind):
    CLOCKS_STARTED.labels(_kind)
