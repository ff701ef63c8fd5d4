"""Helpers for the webhook tests: settings, subscribing, recording events, a running dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select

from services.webhooks import store
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.models import DeliveryAttempt, Subscription, WebhookMessage
from services.webhooks.recording import record
from services.webhooks.schemas import SubscriptionCreated, SubscriptionIn
from shared.config import Settings
from shared.events import CloudEvent, LeadScored, LeadScoredData, SlaBreached, SlaBreachedData
from tests.support.common import Database, eventually, make_settings
from tests.support.receiver import Received, Reply

FAST = {
    "retry_schedule_s": [0, 0.2, 0.4, 0.8, 1.6, 3.2],
    "jitter": 0,
    "timeout_s": 2,
    "breaker_failures": 1000,
    "poll_interval_ms": 20,
    "allowed_networks": ["127.0.0.0/8"],
}


def webhook_settings(db: Database, **webhooks: Any) -> Settings:
    return make_settings(db, webhooks={**FAST, **webhooks})


async def subscribe(
    db: Database, settings: Settings, url: str, types: list[str] | None = None, **extra: Any
) -> SubscriptionCreated:
    body = SubscriptionIn(url=url, event_types=types or ["lead.*"], **extra)
    async with db.sessions.begin() as session:
        return await store.create(session, body, settings=settings.webhooks, now=datetime.now(UTC))


def scored(lead_id: UUID | None = None, score: int = 60) -> LeadScored:
    lead = lead_id or uuid4()
    return LeadScored.about_lead(
        lead,
        LeadScoredData(lead_id=lead, score=score),
        source="/leadflow/scoring",
        time=datetime.now(UTC),
    )


def breached(lead_id: UUID | None = None, **data: Any) -> SlaBreached:
    """An ``sla.breached`` event: Ana's first response to a hot lead is late."""
    lead = lead_id or uuid4()
    values: dict[str, Any] = {
        "lead_id": lead,
        "clock": "first_response",
        "policy": "hot",
        "owner_id": uuid4(),
        "owner_email": "ana@example.com",
        "team": "emea",
        "deadline": datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
        "tier": 2,
        "at": "100%",
        "notify": ["manager@example.com"],
    }
    return SlaBreached.about_lead(
        lead,
        SlaBreachedData(**{**values, **data}),
        source="/leadflow/sla-monitor",
        time=datetime.now(UTC),
    )


async def emit(db: Database, settings: Settings, *events: CloudEvent) -> None:
    """What the consumer does with each event, one transaction per event."""
    for event in events:
        async with db.sessions.begin() as session:
            await record(session, event, settings=settings, now=datetime.now(UTC))


@asynccontextmanager
async def dispatching(db: Database, settings: Settings) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(db.sessions, settings)
    task = asyncio.create_task(dispatcher.run())
    try:
        await eventually(lambda: dispatcher.ready or task.done(), within=10)
        yield dispatcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception():
            raise AssertionError(f"dispatcher died: {task.exception()!r}")


async def messages(db: Database, subscription_id: UUID) -> list[WebhookMessage]:
    async with db.sessions() as session:
        rows = await session.scalars(
            select(WebhookMessage)
            .where(WebhookMessage.subscription_id == subscription_id)
            .order_by(WebhookMessage.seq)
        )
        return list(rows)


async def attempts(db: Database, subscription_id: UUID) -> list[DeliveryAttempt]:
    async with db.sessions() as session:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.subscription_id == subscription_id)
            .order_by(DeliveryAttempt.attempted_at)
        )
        return list(rows)


async def subscription(db: Database, subscription_id: UUID) -> Subscription:
    async with db.sessions() as session:
        found = await session.get(Subscription, subscription_id)
        assert found is not None
        return found


def stalling(release: asyncio.Event) -> Callable[[Received], Awaitable[Reply]]:
    """A receiver's handler that holds every request until ``release`` is set, then answers 200."""

    async def stall(_request: Received) -> Reply:
        await release.wait()
        return Reply(200)

    return stall
