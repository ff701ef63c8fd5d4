"""Scoring's reads of a batch's activities and submissions, planned on a fresh database."""

from __future__ import annotations

import pytest

from services.scoring import store
from tests.support.common import Database


@pytest.mark.parametrize(
    ("statement", "index"),
    [
        (store.ACTIVITIES, "ix_scoring_activities_lead"),
        (store.SUBMISSIONS, "ix_inquiries_lead_id"),
    ],
)
async def test_a_batchs_reads_probe_the_lead_index_even_when_planned_on_empty_tables(
    pg: Database, statement: str, index: str
) -> None:
    """A generic plan made while the tables are empty (no statistics yet; autoanalyze waits a
    minute) probes the lead index per lead; as plain joins these scanned the whole table at
    every batch until the first analyze."""
    async with pg.engine.connect() as connection:
        await connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(f"PREPARE batch_read(uuid[]) AS {statement}")
        explained = await connection.exec_driver_sql(
            "EXPLAIN EXECUTE batch_read('{00000000-0000-0000-0000-000000000001}')"
        )
        plan = "\n".join(row[0] for row in explained)
        await connection.exec_driver_sql("DEALLOCATE batch_read")
        await connection.rollback()
    assert index in plan, plan
    assert "Seq Scan" not in plan, plan
