"""Prometheus metrics shared by every service (served at ``GET /metrics``)."""

from prometheus_client import Counter, Gauge, Histogram

LEADS_RECEIVED = Counter("leadflow_leads_received_total", "Inquiries accepted", ["source"])
OUTBOX_PUBLISHED = Counter("leadflow_outbox_published_total", "Events published by the relay")
OUTBOX_REPUBLISHED = Counter(
    "leadflow_outbox_republished_total", "Events queued again after the broker lost its topics"
)
EVENTS_PROCESSED = Counter(
    "leadflow_events_processed_total", "Events applied by a consumer", ["consumer", "outcome"]
)
DEAD_LETTERED = Counter(
    "leadflow_dead_lettered_total", "Messages sent to the dead-letter topic", ["consumer"]
)
BATCH_SECONDS = Histogram(
    "leadflow_consumer_batch_seconds", "Time to apply one batch", ["consumer"]
)
CONSUMER_LAG = Gauge(
    "leadflow_consumer_lag",
    "Records on the partition after the consumer's last committed offset, as the consumer last"
    " saw the partition's end (refreshed at each poll)",
    ["consumer", "topic", "partition"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "leadflow_outbox_oldest_age_seconds",
    "Seconds since the oldest event still waiting in the outbox was staged (0: none waits), as"
    " the relay last looked (every few seconds), aged to the scrape",
    ["relay"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "leadflow_http_request_duration_seconds",
    "Time from a request's arrival at the app to the end of its answer, by method, route"
    " template (never the raw path; `unmatched` when no route took it) and status class",
    ["method", "route", "status"],
    # Around intake's p99 target (50 ms) and the latency alert's threshold (250 ms).
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
