"""The dispatcher's claim on PostgreSQL, planned with statistics from a quiet time (every message
delivered) and run in a backlog: each candidate's place in its queue is one probe of the queue
index, not a walk of every pending message (the due index) for each candidate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from services.webhooks.queue import claim
from services.webhooks.recording import record_many
from tests.support.common import Database
from tests.support.plans import nodes, plan_of
from tests.support.webhooks import scored, subscribe, webhook_settings

CLAIM = "FROM webhook_messages JOIN webhook_subscriptions"
DELIVERED = "UPDATE webhook_messages SET status = 'delivered', delivered_at = now()"


async def test_the_claim_probes_each_queue_with_statistics_from_a_quieter_time(
    pg: Database,
) -> None:
    settings = webhook_settings(pg)
    created = await subscribe(pg, settings, "http://127.0.0.1:9/hook")  # never sent to
    now = datetime.now(UTC)
    async with pg.sessions.begin() as session:
        await record_many(session, [scored() for _ in range(300)], settings=settings, now=now)
    async with pg.engine.connect() as connection:  # a healthy endpoint: all delivered
        await connection.exec_driver_sql(DELIVERED)
        await connection.exec_driver_sql("ANALYZE webhook_messages")
        await connection.commit()
    async with pg.sessions.begin() as session:
        backlog = [scored() for _ in range(3000)]
        await record_many(session, backlog, settings=settings, now=now)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if CLAIM in statement:
            statements.append((statement, parameters))

    event.listen(pg.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with pg.sessions.begin() as session:
            claimed = await claim(
                session, now=now, limit=10, lease=timedelta(minutes=1), in_flight={},
                per_endpoint=10, threshold=1000, endpoints=[created.id],
            )  # fmt: skip
            [(statement, parameters)] = statements
            connection = await session.connection()
            explained = await connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {statement}", parameters
            )
            plan = explained.scalar_one()
    finally:
        event.remove(pg.engine.sync_engine, "before_cursor_execute", capture)
    assert len(claimed) == 10
    tree = plan_of(plan)
    subplans = [n for n in nodes(tree) if n.get("Parent Relationship") == "SubPlan"]
    assert subplans, tree
    used = {n.get("Index Name") for s in subplans for n in nodes(s) if "Index Name" in n}
    assert used == {"ix_webhook_messages_lead_queue"}, tree
