"""The webhook service's Prometheus metrics (``GET /metrics`` of the process that delivers)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter("leadflow_webhook_attempts_total", "Webhook delivery attempts", ["outcome"])
LATENCY = Histogram("leadflow_webhook_attempt_seconds", "Time from request to response")
DISABLED = Counter("leadflow_webhook_endpoints_disabled_total", "Endpoints disabled")
MESSAGES_EXHAUSTED = Counter(
    "leadflow_webhook_messages_exhausted_total",
    "Messages given up on, kept for replay: their retry schedule spent (retries_spent) or their"
    " record refused for good by a CRM (rejected)",
    ["reason"],
)
# Exported at 0 from the start: Prometheus's increase() takes a series' first sample as its
# start, so a series born at its first increment would hide that one (the alert's only one).
for _reason in ("retries_spent", "rejected"):
    MESSAGES_EXHAUSTED.labels(_reason)
