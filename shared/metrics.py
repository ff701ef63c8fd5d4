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
