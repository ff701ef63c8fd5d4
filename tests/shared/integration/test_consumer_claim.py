"""The consumer's dedupe claim belongs to the batch's transaction: a batch that fails leaves its
events unclaimed, so the retry (or the one-by-one pass) applies them instead of skipping them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from shared.events import LeadReceived, LeadReceivedData
from shared.models import ProcessedEvent
from tests.support.common import Database, make_settings, offline_consumer


class Failing:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def handle_batch(self, events: Any, **_: Any) -> None:
        self.seen.extend(events)
        raise LookupError("the lead is not there")

    async def __call__(self, event: Any, **kwargs: Any) -> None:
        await self.handle_batch([event], **kwargs)


def _event() -> LeadReceived:
    lead = uuid4()
    data = LeadReceivedData(lead_id=lead, inquiry_id=uuid4(), source="web", new_lead=True)
    return LeadReceived.about_lead(lead, data, source="/test", time=datetime.now(UTC))


async def test_a_failed_batch_leaves_its_events_unclaimed(db: Database) -> None:
    handler = Failing()
    consumer = offline_consumer("claims", handler, db.sessions, make_settings(db))
    events = [_event(), _event()]
    for _ in range(2):
        with pytest.raises(LookupError):
            await consumer._apply(events)
    assert handler.seen == events * 2  # handed over again: the first claim was rolled back
    async with db.sessions() as session:
        count = select(func.count()).select_from(ProcessedEvent)
        assert await session.scalar(count) == 0
