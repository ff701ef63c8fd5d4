"""The webhook service's retention: delivery attempts past ``webhooks.attempts_retention_days``
are deleted, and delivered messages past ``webhooks.delivered_retention_days`` with their
attempts; pending and exhausted messages stay. In batches, by the webhook process's sweep; two
sweeps at once on PostgreSQL take each row once. On both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select

from services.webhooks.models import DeliveryAttempt, Subscription, WebhookMessage
from services.webhooks.pruning import start_webhook_pruner, webhook_sweeper
from shared.ids import new_id
from shared.models import table_of
from shared.runtime import Runtime
from tests.support.common import Database, eventually
from tests.support.intake import count, intake

DAY = timedelta(days=1)
RETENTION = {
    "attempts_retention_days": 7,
    "delivered_retention_days": 14,
    "retention_sweep_batch": 3,
}
messages, attempts = table_of(WebhookMessage), table_of(DeliveryAttempt)


async def subscription(runtime: Runtime) -> UUID:
    now, subscription_id = datetime.now(UTC), new_id()
    async with runtime.sessions.begin() as session:
        await session.execute(
            insert(table_of(Subscription)).values(
                id=subscription_id,
                url="https://crm.test/hook",
                event_types=["*"],
                secret="s",
                enabled=True,
                consecutive_failures=0,
                description="",
                created_at=now,
                updated_at=now,
            )
        )
    return subscription_id


async def message(
    runtime: Runtime, to: UUID, label: str, status: str, *, ago: timedelta, tries: int = 1
) -> None:
    """A message ``label`` settled (or last tried) ``ago``, with ``tries`` attempts, a day apart
    before that."""
    at = datetime.now(UTC) - ago
    row: dict[str, Any] = {
        "id": new_id(),
        "subscription_id": to,
        "event_id": label,
        "event_type": "lead.mql",
        "lead_id": str(new_id()),
        "payload": "{}",
        "status": status,
        "attempts": tries,
        "due_at": at,
        "created_at": at - tries * DAY,
        "delivered_at": at if status == "delivered" else None,
    }
    async with runtime.sessions.begin() as session:
        seq = (
            await session.execute(insert(messages).values(row).returning(messages.c.seq))
        ).scalar_one()
        await session.execute(
            insert(attempts),
            [
                {
                    "id": new_id(),
                    "message_seq": seq,
                    "subscription_id": to,
                    "lead_id": row["lead_id"],
                    "event_type": "lead.mql",
                    "attempted_at": at - i * DAY,
                    "status_code": 200 if status == "delivered" and i == 0 else 500,
                    "latency_ms": 3.0,
                    "outcome": "delivered" if status == "delivered" and i == 0 else "failed",
                    "response_excerpt": f"{label}#{i}",
                }
                for i in range(tries)
            ],
        )


async def kept(runtime: Runtime) -> tuple[set[str], set[str]]:
    """The messages (event ids) and attempts (excerpts) left."""
    async with runtime.sessions() as session:
        left = set((await session.scalars(select(messages.c.event_id))).all())
        logged = set((await session.scalars(select(attempts.c.response_excerpt))).all())
    return left, {entry for entry in logged if entry}


async def test_old_attempts_and_delivered_messages_go_and_the_rest_stays(db: Database) -> None:
    async with intake(db, webhooks=RETENTION) as runtime:
        to = await subscription(runtime)
        await message(runtime, to, "delivered-old", "delivered", ago=15 * DAY)
        await message(runtime, to, "delivered-mid", "delivered", ago=8 * DAY, tries=2)
        await message(runtime, to, "delivered-new", "delivered", ago=DAY)
        await message(runtime, to, "exhausted-old", "exhausted", ago=30 * DAY, tries=3)
        await message(runtime, to, "pending-old", "pending", ago=5 * DAY, tries=4)

        done = await webhook_sweeper(runtime).sweep(datetime.now(UTC))

        left, logged = await kept(runtime)
        assert left == {"delivered-mid", "delivered-new", "exhausted-old", "pending-old"}
        assert logged == {"delivered-new#0", "pending-old#0", "pending-old#1"}
        # Attempts first (8 past 7 days, the old delivered message's among them), then the
        # messages; each row counted once.
        assert done == {"webhook attempts": 8, "delivered webhook messages": 1}
        again = await webhook_sweeper(runtime).sweep(datetime.now(UTC))
        assert again == {"webhook attempts": 0, "delivered webhook messages": 0}


async def test_a_delivered_message_takes_its_attempts_with_it(db: Database) -> None:
    keep_attempts = RETENTION | {"attempts_retention_days": 0}
    async with intake(db, webhooks=keep_attempts) as runtime:
        to = await subscription(runtime)
        await message(runtime, to, "delivered-old", "delivered", ago=15 * DAY, tries=2)
        await message(runtime, to, "exhausted-old", "exhausted", ago=30 * DAY)

        done = await webhook_sweeper(runtime).sweep(datetime.now(UTC))

        assert done == {"webhook attempts": 0, "delivered webhook messages": 1}
        assert await kept(runtime) == ({"exhausted-old"}, {"exhausted-old#0"})


async def test_sweeps_at_once_prune_each_row_once(pg: Database) -> None:
    async with intake(pg, webhooks=RETENTION) as runtime:
        to = await subscription(runtime)
        for i in range(30):
            await message(runtime, to, f"old-{i}", "delivered", ago=20 * DAY, tries=2)
        await message(runtime, to, "new", "delivered", ago=DAY)
        sweepers = [webhook_sweeper(runtime) for _ in range(3)]

        done = await asyncio.wait_for(
            asyncio.gather(*(s.sweep(datetime.now(UTC)) for s in sweepers)), 60
        )

        assert sum(d["webhook attempts"] for d in done) == 60
        assert sum(d["delivered webhook messages"] for d in done) == 30
        assert await kept(runtime) == ({"new"}, {"new#0"})


async def test_the_webhook_process_prunes_in_the_background(db: Database) -> None:
    settings = RETENTION | {"retention_sweep_interval_s": 0.05}
    async with intake(db, webhooks=settings) as runtime:
        to = await subscription(runtime)
        await message(runtime, to, "old", "delivered", ago=20 * DAY)

        start_webhook_pruner(runtime)

        async def pruned() -> bool:
            return await count(runtime, WebhookMessage) == 0

        await eventually(pruned)
        await message(runtime, to, "later", "delivered", ago=20 * DAY)
        await eventually(pruned)  # it keeps sweeping
        assert await count(runtime, DeliveryAttempt) == 0
