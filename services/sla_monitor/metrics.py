"""The SLA monitor's Prometheus metrics (``GET /metrics`` of the process that runs the sweep)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
