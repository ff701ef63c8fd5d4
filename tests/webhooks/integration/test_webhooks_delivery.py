"""Deliveries to real HTTP receivers on 127.0.0.1, with the queue in a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import func, select, update
from standardwebhooks import Webhook

from services.webhooks import store
from services.webhooks.models import Subscription
from services.webhooks.queue import claim
from shared.events import LeadErased, LeadErasedData
from shared.models import OutboxMessage
from tests.support.common import Database, eventually
from tests.support.receiver import Received, Receiver, Reply
from tests.support.webhooks import (
    attempts,
    dispatching,
    emit,
    messages,
    scored,
    stalling,
    subscribe,
    subscription,
    webhook_settings,
)


async def test_a_delivery_is_signed_the_standard_way_and_logged(db: Database) -> None:
    settings = webhook_settings(db)
    async with Receiver() as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        event = scored()
        await emit(db, settings, event)
        await eventually(lambda: receiver.received)
        [request] = receiver.received
        verified = Webhook(created.secret).verify(request.body, request.headers)
        assert verified == event.model_dump(mode="json", exclude_none=True)
        assert request.headers["webhook-id"] == str(event.id)
        assert request.headers["content-type"] == "application/json"
        [message] = await eventually(lambda: _delivered(db, created.id))
        assert message.attempts == 1 and message.last_status == 200
        [attempt] = await attempts(db, created.id)
        assert attempt.status_code == 200 and attempt.outcome == "delivered"
        assert attempt.latency_ms > 0 and attempt.response_excerpt == "ok"


async def _delivered(db: Database, subscription_id):  # type: ignore[no-untyped-def]
    rows = await messages(db, subscription_id)
    return rows if rows and all(m.status == "delivered" for m in rows) else None


async def test_a_receiver_down_for_a_while_gets_everything_in_order_once_back(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    receiver = await Receiver().start()
    port = receiver.port
    created = await subscribe(db, settings, receiver.url())
    await receiver.stop()  # down: connections refused
    leads = [uuid4() for _ in range(3)]
    events = [scored(lead, score) for score in range(5) for lead in leads]
    async with dispatching(db, settings):
        await emit(db, settings, *events)
        await eventually(lambda: _failed_at_least(db, created.id, 3))
        back = await Receiver().start(port)
        try:
            await eventually(lambda: len(back.received) >= len(events), within=30)
            await eventually(lambda: _delivered(db, created.id), within=10)
        finally:
            await back.stop()
    for lead in leads:
        scores = [b["data"]["score"] for b in back.bodies() if b["subject"] == str(lead)]
        assert scores == [0, 1, 2, 3, 4]
    assert sorted(r.headers["webhook-id"] for r in back.received) == sorted(
        str(e.id) for e in events
    )


async def _failed_at_least(db: Database, subscription_id, n: int) -> bool:  # type: ignore[no-untyped-def]
    return sum(a.outcome == "retry" for a in await attempts(db, subscription_id)) >= n


async def test_500s_follow_the_schedule_then_exhaust_and_the_message_can_be_replayed(
    db: Database,
) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.3, 0.3])
    failing = True

    def respond(request: Received) -> Reply:
        return Reply(500, body=b"boom") if failing else Reply(200)

    async with Receiver(respond) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        event = scored()
        await emit(db, settings, event)
        [message] = await eventually(lambda: _with_status(db, created.id, "exhausted"))
        log = await attempts(db, created.id)
        assert [(a.status_code, a.outcome) for a in log] == [(500, "retry")] * 3
        assert log[0].response_excerpt == "boom"
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
        assert all(gap >= 0.25 for gap in gaps), gaps
        failing = False
        async with db.sessions.begin() as session:
            await store.replay_message(session, created.id, message.id, now=datetime.now(UTC))
        await eventually(lambda: _delivered(db, created.id))
        ids = {r.headers["webhook-id"] for r in receiver.received}
        assert ids == {str(event.id)} and len(receiver.received) == 4


async def _with_status(db: Database, subscription_id, status: str):  # type: ignore[no-untyped-def]
    rows = await messages(db, subscription_id)
    return rows if rows and all(m.status == status for m in rows) else None


async def test_429_with_retry_after_is_honoured(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.05, 0.05])

    def respond(request: Received) -> Reply:
        if receiver.count == 1:
            return Reply(429, headers={"Retry-After": "1"})
        return Reply(200)

    async with Receiver(respond) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored())
        await eventually(lambda: _delivered(db, created.id), within=10)
        first, second = receiver.received
        assert second.at - first.at >= 0.95
        outcomes = [a.outcome for a in await attempts(db, created.id)]
        assert outcomes == ["slow_down", "delivered"]


async def test_502_and_504_slow_down_and_are_retried(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.05, 0.05, 0.05])
    answers = iter([502, 504, 200])
    async with Receiver(lambda _r: Reply(next(answers))) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored())
        await eventually(lambda: _delivered(db, created.id))
        log = await attempts(db, created.id)
        assert [(a.status_code, a.outcome) for a in log] == [
            (502, "slow_down"),
            (504, "slow_down"),
            (200, "delivered"),
        ]


async def test_410_disables_the_endpoint_and_says_so_in_an_event(db: Database) -> None:
    settings = webhook_settings(db)
    async with Receiver(lambda _r: Reply(410)) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored(), scored())
        await eventually(lambda: _disabled(db, created.id))
    found = await subscription(db, created.id)
    assert found.disabled_reason is not None and found.disabled_reason.startswith("gone")
    # Both messages may have been in flight together; nothing is sent after the 410 is settled.
    assert len(receiver.received) <= 2
    async with db.sessions.begin() as session:
        due = await claim(
            session,
            now=datetime.now(UTC) + timedelta(hours=1),
            limit=10,
            lease=timedelta(seconds=1),
            in_flight={},
            per_endpoint=8,
            threshold=5,
        )
    assert due == []
    [event] = await _outbox(db, "subscription.disabled")
    assert event.aggregate_id == str(created.id)
    assert '"reason":"gone"' in event.payload and created.secret not in event.payload


async def _disabled(db: Database, subscription_id) -> bool:  # type: ignore[no-untyped-def]
    return not (await subscription(db, subscription_id)).enabled


async def _outbox(db: Database, event_type: str) -> list[OutboxMessage]:
    async with db.sessions() as session:
        rows = await session.scalars(select(OutboxMessage).where(OutboxMessage.type == event_type))
        return list(rows)


async def test_a_timeout_is_retried(db: Database) -> None:
    settings = webhook_settings(db, timeout_s=0.3, retry_schedule_s=[0, 0.05, 0.05])

    def respond(request: Received) -> Reply:
        return Reply(200, delay=2.0) if receiver.count == 1 else Reply(200)

    async with Receiver(respond) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored())
        await eventually(lambda: _delivered(db, created.id))
        first, second = await attempts(db, created.id)
        assert first.outcome == "retry" and first.status_code is None
        assert first.error == "timed out after 0.3s" and 250 <= first.latency_ms < 1500
        assert second.outcome == "delivered"


async def test_a_restart_in_the_middle_of_the_schedule_loses_nothing(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.5, 0.5, 0.5])
    async with Receiver(lambda _r: Reply(500 if receiver.count <= 2 else 200)) as receiver:
        created = await subscribe(db, settings, receiver.url())
        async with dispatching(db, settings):
            await emit(db, settings, scored())
            await eventually(lambda: _failed_at_least(db, created.id, 1))
        [message] = await messages(db, created.id)  # the first process is gone
        assert message.status == "pending" and message.attempts == 1
        assert message.due_at > datetime.now(UTC) - timedelta(seconds=1)
        async with dispatching(db, settings):  # a new process picks the schedule up
            await eventually(lambda: _delivered(db, created.id), within=10)
        assert [a.status_code for a in await attempts(db, created.id)] == [500, 500, 200]


async def test_a_slow_receiver_does_not_delay_a_fast_one(db: Database) -> None:
    settings = webhook_settings(db, timeout_s=30, concurrency=16, per_endpoint_concurrency=4)
    release = asyncio.Event()
    stall = stalling(release)

    async with Receiver(stall) as slow, Receiver() as fast, dispatching(db, settings):
        slow_sub = await subscribe(db, settings, slow.url())
        fast_sub = await subscribe(db, settings, fast.url())
        await emit(db, settings, *(scored() for _ in range(20)))
        await eventually(lambda: _delivered(db, fast_sub.id), within=10)
        assert len(fast.received) == 20
        assert slow.count == 4  # its own slots only, all still waiting
        release.set()
        await eventually(lambda: _delivered(db, slow_sub.id), within=10)
        assert slow.count == 20


async def test_the_circuit_opens_probes_one_at_a_time_and_the_backlog_goes_when_back(
    db: Database,
) -> None:
    settings = webhook_settings(
        db, breaker_failures=2, breaker_cooldown_s=0.5, retry_schedule_s=[0] + [0.05] * 20
    )
    healthy = False
    async with Receiver(lambda _r: Reply(200 if healthy else 503)) as receiver:
        created = await subscribe(db, settings, receiver.url())
        async with dispatching(db, settings):
            await emit(db, settings, *(scored() for _ in range(6)))
            found = await eventually(lambda: _paused(db, created.id))
            assert found.consecutive_failures >= 2
            count = receiver.count
            await eventually(lambda: receiver.count > count, within=5)  # a half-open probe
            healthy = True
            await eventually(lambda: _delivered(db, created.id), within=10)
        assert (await subscription(db, created.id)).consecutive_failures == 0


async def _paused(db: Database, subscription_id):  # type: ignore[no-untyped-def]
    found = await subscription(db, subscription_id)
    return found if found.paused_until and found.paused_until > datetime.now(UTC) else None


async def test_an_endpoint_failing_for_days_is_disabled_with_an_event(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.05, 0.05], disable_after_hours=72)
    async with Receiver(lambda _r: Reply(500)) as receiver:
        created = await subscribe(db, settings, receiver.url())
        async with db.sessions.begin() as session:
            await session.execute(
                update(Subscription)
                .where(Subscription.id == created.id)
                .values(failing_since=datetime.now(UTC) - timedelta(days=4), consecutive_failures=9)
            )
        async with dispatching(db, settings):
            await emit(db, settings, scored())
            await eventually(lambda: _disabled(db, created.id))
    found = await subscription(db, created.id)
    assert found.disabled_reason is not None and found.disabled_reason.startswith("failing")
    [event] = await _outbox(db, "subscription.disabled")
    assert '"reason":"failing"' in event.payload


async def test_redirects_are_not_followed_and_large_bodies_are_cut(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0], excerpt_chars=100)
    async with Receiver() as elsewhere:
        moved = Reply(302, headers={"Location": elsewhere.url()}, body=b"x" * 1_000_000)
        async with Receiver(lambda _r: moved) as receiver, dispatching(db, settings):
            created = await subscribe(db, settings, receiver.url())
            await emit(db, settings, scored())
            await eventually(lambda: _with_status(db, created.id, "exhausted"))
    [attempt] = await attempts(db, created.id)
    assert attempt.status_code == 302 and "not followed" in (attempt.error or "")
    assert attempt.response_excerpt == "x" * 100
    assert elsewhere.received == []


async def test_a_target_that_resolves_to_a_forbidden_address_is_refused_at_delivery(
    db: Database,
) -> None:
    allowing = webhook_settings(db)
    refusing = allowing.model_copy(
        update={"webhooks": allowing.webhooks.model_copy(update={"allowed_networks": []})}
    )
    async with Receiver() as receiver:
        created = await subscribe(db, allowing, f"http://localhost:{receiver.port}/hook")
        async with dispatching(db, refusing):
            await emit(db, refusing, scored())
            await eventually(lambda: _failed_at_least_refused(db, created.id))
    assert receiver.received == []
    first = (await attempts(db, created.id))[0]
    assert first.status_code is None and "a loopback address" in (first.error or "")


async def _failed_at_least_refused(db: Database, subscription_id) -> bool:  # type: ignore[no-untyped-def]
    return any(a.outcome == "refused" for a in await attempts(db, subscription_id))


async def test_an_event_recorded_twice_is_delivered_once(db: Database) -> None:
    settings = webhook_settings(db)
    async with Receiver() as receiver:
        created = await subscribe(db, settings, receiver.url())
        event = scored()
        await emit(db, settings, event, event)
        async with db.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Subscription))
        assert count == 1 and len(await messages(db, created.id)) == 1


async def test_lead_erased_reaches_every_lead_subscriber_whatever_its_types_or_filter(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    url = "http://127.0.0.1:9/hook"
    enterprise = 'data.segment == "enterprise"'
    filtered = await subscribe(db, settings, url, ["lead.mql"], filter=enterprise)
    everything = await subscribe(db, settings, url, ["*"])
    sla_only = await subscribe(db, settings, url, ["sla.*"])
    lead = uuid4()
    erased = LeadErased.about_lead(
        lead,
        LeadErasedData(lead_id=lead, reason="erasure request"),
        source="/t",
        time=datetime.now(UTC),
    )
    await emit(db, settings, scored(lead), erased)

    assert [m.event_type for m in await messages(db, filtered.id)] == ["lead.erased"]
    assert [m.event_type for m in await messages(db, everything.id)] == [
        "lead.scored",
        "lead.erased",
    ]
    assert await messages(db, sla_only.id) == []
