"""The consumer's handler: an event in, the messages to deliver recorded (no HTTP here)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.queue import record, record_many
from shared.config import Settings
from shared.events import Event


class RecordDeliveries:
    """Records one message per interested subscription, in the consumer's transaction (which
    also records the event as processed, so a redelivered event records nothing twice)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, event: Event, *, session: AsyncSession, now: datetime) -> None:
        await record(session, event, settings=self.settings, now=now)

    async def handle_batch(
        self, events: list[Event], *, session: AsyncSession, now: datetime
    ) -> None:
        await record_many(session, events, settings=self.settings, now=now)
