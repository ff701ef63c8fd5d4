"""The webhook service's retention sweep (``shared.pruning``: batches, one short transaction
each, safe with replicas), every ``webhooks.retention_sweep_interval_s``:

- delivery attempts older than ``webhooks.attempts_retention_days`` are deleted (the delivery
  log, with the receivers' answers);
- delivered messages (each the body as sent) are deleted ``webhooks.delivered_retention_days``
  after delivery, their attempts with them. Pending messages are still to be sent, and exhausted
  ones are kept for a replay: neither is pruned.

0 keeps them forever.
"""

from __future__ import annotations

from services.webhooks.models import DELIVERED, DeliveryAttempt, WebhookMessage
from services.webhooks.settings import WebhookSettings, webhooks_config
from shared.models import table_of
from shared.pruning import Retention, Sweeper, keep_for
from shared.runtime import Runtime

messages, attempts = table_of(WebhookMessage), table_of(DeliveryAttempt)


def webhook_retentions(settings: WebhookSettings) -> list[Retention]:
    return [
        Retention(
            name="webhook attempts",
            table=attempts,
            key="id",
            age="attempted_at",
            keep=keep_for(settings.attempts_retention_days),
        ),
        Retention(
            name="delivered webhook messages",
            table=messages,
            key="seq",
            age="delivered_at",
            keep=keep_for(settings.delivered_retention_days),
            where=messages.c.status == DELIVERED,
        ),
    ]


def webhook_sweeper(runtime: Runtime) -> Sweeper:
    config = webhooks_config(runtime.settings).webhooks
    return Sweeper(
        runtime.sessions,
        webhook_retentions(config),
        interval_s=config.retention_sweep_interval_s,
        batch=config.retention_sweep_batch,
    )


def start_webhook_pruner(runtime: Runtime) -> Sweeper:
    """The webhook process's background sweep of old attempts and delivered messages."""
    sweeper = webhook_sweeper(runtime)
    runtime.spawn(sweeper.run(), name="webhook-pruner")
    return sweeper
