"""The consumer leases the messages that can go at once as it records them and hands them to the
dispatcher after its commit (no claim); real receivers on 127.0.0.1, both databases."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.dispatcher import Dispatcher
from services.webhooks.handlers import RecordDeliveries
from services.webhooks.models import Subscription, WebhookMessage
from shared.config import Settings
from shared.events import CloudEvent
from tests.support.common import Database, eventually
from tests.support.receiver import Received, Receiver, Reply
from tests.support.webhooks import (
    attempts,
    dispatching,
    messages,
    scored,
    stalling,
    subscribe,
    webhook_settings,
)


async def _record(
    session: AsyncSession,
    settings: Settings,
    dispatcher: Dispatcher,
    *events: CloudEvent,
    now: datetime | None = None,
) -> None:
    """What the webhooks consumer does with a batch, in the caller's transaction."""
    handler = RecordDeliveries(settings, dispatcher=dispatcher)
    await handler.handle_batch(list(events), session=session, now=now or datetime.now(UTC))


async def _leases(session: AsyncSession) -> dict[str, bool]:
    """Event id → leased, as the recording transaction sees its rows."""
    rows = await session.execute(select(WebhookMessage.event_id, WebhookMessage.locked_until))
    return {event_id: locked is not None for event_id, locked in rows}


async def _delivered(db: Database, subscription_id: UUID, count: int) -> bool:
    rows = await messages(db, subscription_id)
    return len(rows) == count and all(m.status == "delivered" for m in rows)


async def test_a_message_leased_as_it_is_recorded_is_sent_at_once_without_a_claim(
    db: Database,
) -> None:
    settings = webhook_settings(db, poll_interval_ms=60_000)  # no poll will find it
    async with Receiver() as receiver, dispatching(db, settings) as dispatcher:
        created = await subscribe(db, settings, receiver.url())
        event = scored()
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, event)
            assert await _leases(session) == {str(event.id): True}
            assert dispatcher.in_flight == {created.id: 1}
        assert not dispatcher.wakeup.is_set()  # all handed over: no claim asked for
        claims = _count_claims(dispatcher)
        [request] = await eventually(lambda: receiver.received, within=5)
        assert request.headers["webhook-id"] == str(event.id)
        await eventually(lambda: _delivered(db, created.id, 1), within=5)
        await eventually(lambda: not dispatcher.tasks, within=5)
        [attempt] = await attempts(db, created.id)
        assert attempt.outcome == "delivered"
        assert claims == []  # nor after its answer: nothing of its endpoint waits


def _count_claims(dispatcher: Dispatcher) -> list[int]:
    """The claims the dispatcher makes from now on (each still made)."""
    claims: list[int] = []
    claim = dispatcher._claim  # noqa: SLF001

    async def counted(free: int) -> list[Any]:
        claims.append(free)
        return await claim(free)

    dispatcher._claim = counted  # type: ignore[method-assign]  # noqa: SLF001
    return claims


async def test_a_lead_keeps_its_order_behind_a_message_that_is_retrying(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.3, 0.3])

    def respond(request: Received) -> Reply:
        return Reply(500) if receiver.count == 1 else Reply(200)

    async with Receiver(respond) as receiver, dispatching(db, settings) as dispatcher:
        created = await subscribe(db, settings, receiver.url())
        lead, other = uuid4(), uuid4()
        first = scored(lead, 1)
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, first)
        await eventually(lambda: receiver.count >= 1)  # failed: pending, due again in 0.3 s
        later = [scored(lead, 2), scored(other, 1), scored(lead, 3), scored(other, 2)]
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, *later)
            leased = await _leases(session)
        # Only the other lead's first message heads its queue; the rest wait for a claim.
        assert [leased[str(e.id)] for e in later] == [False, True, False, False]
        await eventually(lambda: _delivered(db, created.id, 5), within=10)
    for subject in (lead, other):
        scores = [b["data"]["score"] for b in receiver.bodies() if b["subject"] == str(subject)]
        assert scores == ([1, 1, 2, 3] if subject == lead else [1, 2])


async def test_leases_taken_while_recording_keep_the_per_endpoint_limits(db: Database) -> None:
    settings = webhook_settings(db, timeout_s=30, concurrency=16, per_endpoint_concurrency=2)
    release = asyncio.Event()
    stall = stalling(release)

    async with Receiver(stall) as slow, Receiver() as fast, dispatching(db, settings) as dispatcher:
        slow_sub = await subscribe(db, settings, slow.url())
        fast_sub = await subscribe(db, settings, fast.url())
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, *(scored() for _ in range(10)))
            rows = await session.execute(
                select(WebhookMessage.subscription_id).where(
                    WebhookMessage.locked_until.is_not(None)
                )
            )
            # 2 requests at a time per endpoint and as many waiting for them, like a claim.
            assert Counter(rows.scalars()) == {slow_sub.id: 4, fast_sub.id: 4}
        await eventually(lambda: _delivered(db, fast_sub.id, 10), within=10)
        assert slow.count == 2  # its own connections only, both still waiting
        release.set()
        await eventually(lambda: _delivered(db, slow_sub.id, 10), within=10)
        assert slow.count == 10


async def test_a_half_open_circuit_gets_one_leased_probe_and_a_paused_one_none(
    db: Database,
) -> None:
    settings = webhook_settings(db, breaker_failures=3, breaker_cooldown_s=60)
    async with (
        Receiver() as probed,
        Receiver() as paused,
        dispatching(db, settings) as dispatcher,
    ):
        probing = await subscribe(db, settings, probed.url())
        resting = await subscribe(db, settings, paused.url())
        now = datetime.now(UTC)
        async with db.sessions.begin() as session:
            for created, until in ((probing, now), (resting, now + timedelta(hours=1))):
                await session.execute(
                    update(Subscription)
                    .where(Subscription.id == created.id)
                    .values(consecutive_failures=3, failing_since=now, paused_until=until)
                )
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, *(scored() for _ in range(3)))
            rows = await session.execute(
                select(WebhookMessage.subscription_id).where(
                    WebhookMessage.locked_until.is_not(None)
                )
            )
            assert list(rows.scalars()) == [probing.id]
            assert dispatcher.in_flight == {probing.id: 1}
        # The probe succeeds, the circuit closes, the rest follow; the paused endpoint waits.
        await eventually(lambda: _delivered(db, probing.id, 3), within=10)
        assert [a.outcome for a in await attempts(db, probing.id)] == ["delivered"] * 3
    assert paused.received == []


async def test_a_lease_whose_process_died_before_the_handover_is_claimed_once_it_expires(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    async with Receiver() as receiver:
        created = await subscribe(db, settings, receiver.url())
        dying = Dispatcher(db.sessions, settings)
        process = asyncio.create_task(dying.run())
        await eventually(lambda: dying.ready)
        # Recorded as if a while ago: the lease has 1.5 s left when the test goes on.
        recorded_at = datetime.now(UTC) - dying.lease + timedelta(seconds=1.5)
        event = scored()
        async with db.sessions.begin() as session:
            await _record(session, settings, dying, event, now=recorded_at)
            process.cancel()  # the process dies between the lease and the handover
            await asyncio.gather(process, return_exceptions=True)
        [leased] = await messages(db, created.id)
        assert leased.status == "pending" and leased.locked_until is not None
        assert receiver.received == []
        async with dispatching(db, settings):  # another process
            await eventually(lambda: _delivered(db, created.id, 1), within=10)
        [attempt] = await attempts(db, created.id)
        assert attempt.outcome == "delivered" and attempt.attempted_at >= leased.locked_until
        assert [r.headers["webhook-id"] for r in receiver.received] == [str(event.id)]


async def test_a_transaction_that_fails_gives_its_slots_back(db: Database) -> None:
    settings = webhook_settings(db)
    async with Receiver() as receiver, dispatching(db, settings) as dispatcher:
        created = await subscribe(db, settings, receiver.url())
        with pytest.raises(RuntimeError):
            async with db.sessions.begin() as session:
                await _record(session, settings, dispatcher, scored(), scored())
                assert dispatcher.in_flight == {created.id: 2}
                raise RuntimeError("the consumer's transaction fails")
        assert dispatcher.in_flight == {}
        assert await messages(db, created.id) == []
        assert receiver.received == []


async def test_new_messages_do_not_overtake_older_ones_waiting_for_a_claim(db: Database) -> None:
    settings = webhook_settings(db, timeout_s=30, per_endpoint_concurrency=1)
    release = asyncio.Event()
    stall = stalling(release)

    async with Receiver(stall) as receiver, dispatching(db, settings) as dispatcher:
        created = await subscribe(db, settings, receiver.url())
        older = [scored() for _ in range(4)]
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, *older)
            leased = await _leases(session)
        assert [leased[str(e.id)] for e in older] == [True, True, False, False]
        assert created.id in dispatcher.backlog
        newer = [scored() for _ in range(2)]
        async with db.sessions.begin() as session:
            await _record(session, settings, dispatcher, *newer)
            leased = await _leases(session)
        assert not any(leased[str(e.id)] for e in newer)
        release.set()
        await eventually(lambda: _delivered(db, created.id, 6), within=10)
    order = [r.headers["webhook-id"] for r in receiver.received]
    assert set(order[:4]) == {str(e.id) for e in older}
    assert set(order[4:]) == {str(e.id) for e in newer}
