"""Wiring of the webhook service: a consumer of the lifecycle and SLA topics, a dispatcher (plain
webhooks), the CRM sync (HubSpot and Salesforce subscriptions, in batches) and the pruner of
old delivery attempts and delivered messages."""

from __future__ import annotations

import asyncio

from services.webhooks.crm.sync import CrmSync
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.handlers import RecordDeliveries
from services.webhooks.pruning import start_webhook_pruner
from services.webhooks.settings import webhooks_config
from shared.consumer import EventConsumer
from shared.runtime import Runtime

CONSUMER = "webhooks"


def start_webhooks(runtime: Runtime, *, name: str = CONSUMER) -> Dispatcher:
    """Consume in the background and deliver; the runtime's relay publishes endpoint events."""
    settings = webhooks_config(runtime.settings)
    dispatcher = Dispatcher(runtime.sessions, settings, on_disabled=runtime.notify_relay)
    crm = CrmSync(runtime.sessions, settings, on_disabled=runtime.notify_relay)
    assigned = runtime.consumers[name] = asyncio.Event()

    async def consume() -> None:
        consumer = EventConsumer(
            name=CONSUMER,
            topics=[settings.topics.lifecycle, settings.topics.sla],
            handler=RecordDeliveries(settings, dispatcher=dispatcher, crm=crm),
            sessions=runtime.sessions,
            producer=await runtime.connected_producer(),
            settings=settings,
            assigned=assigned,
        )
        await consumer.run()

    runtime.spawn(consume(), name=name)
    runtime.spawn(dispatcher.run(), name=f"{name}-dispatcher")
    runtime.spawn(crm.run(), name=f"{name}-crm-sync")
    start_webhook_pruner(runtime)
    return dispatcher
