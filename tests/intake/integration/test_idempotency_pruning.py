"""Expired Idempotency-Key records are deleted in batches, by several sweeps at once too, and the
intake process's background sweep does it on its own; on both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from services.intake.models import IdempotencyRecord
from services.intake.pruning import IdempotencyPruner, start_idempotency_pruner
from shared.runtime import Runtime
from tests.support.common import Database, eventually
from tests.support.intake import client_for, count, intake, new_key

records = IdempotencyRecord.__table__


async def add_records(runtime: Runtime, prefix: str, n: int, at: datetime) -> None:
    rows = [
        {
            "key": f"{prefix}:{i}",
            "fingerprint": "f" * 64,
            "status": 202,
            "body": {"n": i},
            "created_at": at - timedelta(seconds=i),
        }
        for i in range(n)
    ]
    async with runtime.sessions.begin() as session:
        await session.execute(insert(records), rows)


async def keys(runtime: Runtime) -> set[str]:
    async with runtime.sessions() as session:
        return set((await session.scalars(select(records.c.key))).all())


async def test_records_older_than_the_window_go_in_batches_and_live_ones_stay(
    db: Database,
) -> None:
    async with intake(db, intake={"idempotency_hours": 1, "idempotency_prune_batch": 7}) as runtime:
        now = datetime.now(UTC)
        await add_records(runtime, "old", 30, now - timedelta(hours=1, minutes=1))
        await add_records(runtime, "live", 5, now - timedelta(minutes=59))

        deleted = await IdempotencyPruner(runtime.sessions, runtime.settings).prune(now)

        assert deleted == 30
        assert await keys(runtime) == {f"live:{i}" for i in range(5)}
        assert await IdempotencyPruner(runtime.sessions, runtime.settings).prune(now) == 0


async def test_several_sweeps_at_once_delete_each_record_once(db: Database) -> None:
    async with intake(
        db, intake={"idempotency_hours": 1, "idempotency_prune_batch": 10}
    ) as runtime:
        now = datetime.now(UTC)
        await add_records(runtime, "old", 200, now - timedelta(hours=2))
        await add_records(runtime, "live", 3, now)
        pruners = [IdempotencyPruner(runtime.sessions, runtime.settings) for _ in range(4)]

        deleted = await asyncio.gather(*(p.prune(now) for p in pruners))

        assert sum(deleted) == 200
        assert await keys(runtime) == {"live:0", "live:1", "live:2"}


async def test_a_pruned_key_is_a_new_request_again(db: Database) -> None:
    async with intake(db, intake={"idempotency_hours": 0.0001}) as runtime:
        key = await new_key(runtime)
        lead = {"email": "ada@example.com"}
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            first = await client.post("/v1/leads", json=lead, headers={"Idempotency-Key": "k"})
            await IdempotencyPruner(runtime.sessions, runtime.settings).prune(
                datetime.now(UTC) + timedelta(seconds=1)
            )
            assert await count(runtime, IdempotencyRecord) == 0
            again = await client.post("/v1/leads", json=lead, headers={"Idempotency-Key": "k"})
        assert first.status_code == again.status_code == 202
        assert again.json()["inquiry_id"] != first.json()["inquiry_id"]
        assert "idempotent-replayed" not in again.headers


async def test_the_intake_process_prunes_in_the_background(db: Database) -> None:
    settings = {"idempotency_hours": 1, "idempotency_prune_interval_s": 0.05}
    async with intake(db, intake=settings) as runtime:
        await add_records(runtime, "old", 5, datetime.now(UTC) - timedelta(hours=3))
        await add_records(runtime, "live", 1, datetime.now(UTC))

        start_idempotency_pruner(runtime)

        async def pruned() -> bool:
            return await keys(runtime) == {"live:0"}

        await eventually(pruned)
        await add_records(runtime, "later", 2, datetime.now(UTC) - timedelta(hours=3))
        await eventually(pruned)  # it keeps sweeping
