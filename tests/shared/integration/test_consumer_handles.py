"""A handler's ``handles`` types: the events of other types in a batch are neither recorded as
processed nor handed to it, and a batch of only those takes no transaction (``processed_events``
grew by every consumer's every event, about 25 rows a lead, most of them events it ignored)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from shared.consumer import EventConsumer
from shared.events import CloudEvent, LeadActivity, LeadActivityData, LeadReceived
from shared.models import ProcessedEvent
from tests.support.common import Database, lead_received, make_settings, offline_consumer


class Recording:
    handles = (LeadActivity,)

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def handle_batch(self, events: Any, **_: Any) -> None:
        self.seen.extend(events)

    async def __call__(self, event: Any, **kwargs: Any) -> None:
        await self.handle_batch([event], **kwargs)


class Everything(Recording):
    handles = None  # type: ignore[assignment]


def _activity() -> LeadActivity:
    lead, now = uuid4(), datetime.now(UTC)
    data = LeadActivityData(lead_id=lead, kind="demo_request", occurred_at=now, activity_id=uuid4())
    return LeadActivity.about_lead(lead, data, source="/test", time=now)


def _record(event: CloudEvent, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = event.model_dump_json(by_alias=True).encode()
    return ConsumerRecord("t", 0, offset, 0, 0, None, value, None, 0, len(value), ())


def _consumer(db: Database, handler: Recording) -> EventConsumer:
    return offline_consumer("handles", handler, db.sessions, make_settings(db))


async def _claimed(db: Database) -> set[str]:
    async with db.sessions() as session:
        return set(await session.scalars(select(ProcessedEvent.event_id)))


async def test_only_the_handled_types_are_claimed_and_handed_over(db: Database) -> None:
    handler = Recording()
    received, activity = lead_received(), _activity()
    await _consumer(db, handler).process([_record(received, 0), _record(activity, 1)])
    assert [e.id for e in handler.seen] == [activity.id]
    assert await _claimed(db) == {str(activity.id)}


async def test_a_batch_of_other_types_alone_takes_no_transaction(db: Database) -> None:
    handler = Recording()
    consumer = _consumer(db, handler)
    commits: list[None] = []
    consumer.on_commit = lambda: commits.append(None)
    await consumer.process([_record(lead_received(), 0), _record(lead_received(), 1)])
    assert (handler.seen, commits, await _claimed(db)) == ([], [], set())


async def test_a_handler_without_handles_gets_every_event(db: Database) -> None:
    handler = Everything()
    received, activity = lead_received(), _activity()
    await _consumer(db, handler).process([_record(received, 0), _record(activity, 1)])
    assert [type(e) for e in handler.seen] == [LeadReceived, LeadActivity]
    assert await _claimed(db) == {str(received.id), str(activity.id)}
