"""On PostgreSQL, the consumer recording messages and the dispatcher settling attempts for the
same endpoint do not wait for each other: a message's foreign key takes a key-share lock on its
subscription, and settling locks the subscription only against other settlements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import text

from services.webhooks.queue import Claimed, claim
from services.webhooks.recording import record
from services.webhooks.settle import Outcome, settle_delivered
from shared.config import Settings
from tests.support.common import Database
from tests.support.webhooks import messages, scored, subscribe, webhook_settings

NEVER_SENT_TO = "http://127.0.0.1:9/hook"
WAIT_AT_MOST = text("SET LOCAL lock_timeout = '2s'")


async def one_leased(pg: Database) -> tuple[Settings, UUID, Claimed, datetime]:
    """A subscription and one message of it, leased as the dispatcher would."""
    settings = webhook_settings(pg)
    created = await subscribe(pg, settings, NEVER_SENT_TO)
    now = datetime.now(UTC)
    async with pg.sessions.begin() as session:
        await record(session, scored(), settings=settings, now=now)
    async with pg.sessions.begin() as session:
        [leased] = await claim(
            session, now=now, limit=1, lease=timedelta(minutes=1), in_flight={},
            per_endpoint=1, threshold=1000, endpoints=[created.id],
        )  # fmt: skip
    return settings, created.id, leased, now


async def test_settling_does_not_wait_for_a_consumer_recording_for_the_same_endpoint(
    pg: Database,
) -> None:
    settings, endpoint, leased, now = await one_leased(pg)
    answered = Outcome(attempted_at=now, status=200, latency_ms=1.0)
    async with pg.sessions.begin() as recording:
        await record(recording, scored(), settings=settings, now=now)  # not committed yet
        async with pg.sessions.begin() as settling:
            await settling.execute(WAIT_AT_MOST)
            await settle_delivered(settling, [(leased, answered)], now=now)
    statuses = sorted(m.status for m in await messages(pg, endpoint))
    assert statuses == ["delivered", "pending"]


async def test_a_consumer_recording_does_not_wait_for_a_settlement_of_the_same_endpoint(
    pg: Database,
) -> None:
    settings, endpoint, leased, now = await one_leased(pg)
    answered = Outcome(attempted_at=now, status=200, latency_ms=1.0)
    async with pg.sessions.begin() as settling:
        await settle_delivered(settling, [(leased, answered)], now=now)  # not committed yet
        async with pg.sessions.begin() as recording:
            await recording.execute(WAIT_AT_MOST)
            await record(recording, scored(), settings=settings, now=now)
    statuses = sorted(m.status for m in await messages(pg, endpoint))
    assert statuses == ["delivered", "pending"]
