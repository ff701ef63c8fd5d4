"""Intake's retention: lead history entries past ``intake.history_retention_days`` are deleted
and raw bodies of inquiries past ``intake.raw_retention_days`` set to NULL (the lead and the
normalised submission stay), in batches, by the intake process's sweep; two sweeps at once on
PostgreSQL take each row once. On both databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import select, update

from services.intake.pruning import lead_sweeper, start_lead_pruner
from shared.models import Inquiry, Lead, LeadHistory
from shared.runtime import Runtime
from tests.support.common import Database, eventually
from tests.support.intake import AUTH, client_for, count, intake, rows

DAY = timedelta(days=1)
RETENTION = {"history_retention_days": 10, "raw_retention_days": 3, "retention_sweep_batch": 4}


async def post_leads(runtime: Runtime, label: str, n: int) -> list[UUID]:
    async with client_for(runtime) as client:
        ids = []
        for i in range(n):
            body = {"email": f"{label}.{i}@example.com", "first_name": label, "company": "Acme"}
            answer = await client.post("/v1/leads", json=body, headers=AUTH)
            assert answer.status_code == 202, answer.text
            ids.append(UUID(answer.json()["lead_id"]))
        return ids


async def age(runtime: Runtime, leads: list[UUID], by: timedelta) -> None:
    """Date the leads' inquiries and history entries ``by`` ago."""
    then = datetime.now(UTC) - by
    async with runtime.sessions.begin() as session:
        for model, column in ((Inquiry, "received_at"), (LeadHistory, "occurred_at")):
            await session.execute(
                update(model).where(model.lead_id.in_(leads)).values({column: then})
            )


async def test_history_and_raw_bodies_past_their_windows_go_and_the_rest_stays(
    db: Database,
) -> None:
    async with intake(db, intake=RETENTION) as runtime:
        ancient = await post_leads(runtime, "ancient", 6)  # past both windows
        middle = await post_leads(runtime, "middle", 5)  # past the raw body's only
        recent = await post_leads(runtime, "recent", 3)
        await age(runtime, ancient, 11 * DAY)
        await age(runtime, middle, 4 * DAY)

        done = await lead_sweeper(runtime).sweep(datetime.now(UTC))

        assert done == {"lead history": 6, "raw inquiry bodies": 11}
        assert await count(runtime, LeadHistory, LeadHistory.lead_id.in_(ancient)) == 0
        assert await count(runtime, LeadHistory, LeadHistory.lead_id.in_(middle + recent)) == 8
        assert await count(runtime, Lead) == 14
        for inquiry in await rows(runtime, Inquiry):
            kept = inquiry.lead_id in recent
            assert (inquiry.raw is not None) == kept
            assert inquiry.submission["email"].endswith("@example.com")
        async with runtime.sessions() as session:  # SQL NULL, not a JSON null
            nulls = await session.scalars(select(Inquiry.id).where(Inquiry.raw.is_(None)))
            assert len(nulls.all()) == 11
        again = await lead_sweeper(runtime).sweep(datetime.now(UTC))
        assert again == {"lead history": 0, "raw inquiry bodies": 0}


async def test_zero_keeps_them_forever(db: Database) -> None:
    forever = {"history_retention_days": 0, "raw_retention_days": 0}
    async with intake(db, intake=forever) as runtime:
        leads = await post_leads(runtime, "old", 2)
        await age(runtime, leads, 3650 * DAY)

        done = await lead_sweeper(runtime).sweep(datetime.now(UTC))

        assert done == {"lead history": 0, "raw inquiry bodies": 0}
        assert await count(runtime, LeadHistory) == 2
        assert await count(runtime, Inquiry, Inquiry.raw.is_not(None)) == 2


async def test_sweeps_at_once_prune_each_row_once(pg: Database) -> None:
    async with intake(pg, intake=RETENTION | {"retention_sweep_batch": 3}) as runtime:
        old = await post_leads(runtime, "old", 40)
        new = await post_leads(runtime, "new", 4)
        await age(runtime, old, 30 * DAY)
        sweepers = [lead_sweeper(runtime) for _ in range(3)]

        done = await asyncio.wait_for(
            asyncio.gather(*(s.sweep(datetime.now(UTC)) for s in sweepers)), 60
        )

        assert sum(d["lead history"] for d in done) == 40
        assert sum(d["raw inquiry bodies"] for d in done) == 40
        assert await count(runtime, LeadHistory) == 4
        assert await count(runtime, Inquiry, Inquiry.raw.is_not(None)) == 4
        assert {i.lead_id for i in await rows(runtime, Inquiry, Inquiry.raw.is_not(None))} == set(
            new
        )


async def test_the_intake_process_prunes_in_the_background(db: Database) -> None:
    settings = RETENTION | {"retention_sweep_interval_s": 0.05}
    async with intake(db, intake=settings) as runtime:
        old = await post_leads(runtime, "old", 2)
        await age(runtime, old, 20 * DAY)

        start_lead_pruner(runtime)

        async def pruned() -> bool:
            raw = await count(runtime, Inquiry, Inquiry.raw.is_not(None))
            return raw == 0 and await count(runtime, LeadHistory) == 0

        await eventually(pruned)
        later = await post_leads(runtime, "later", 1)
        await age(runtime, later, 20 * DAY)
        await eventually(pruned)  # it keeps sweeping
