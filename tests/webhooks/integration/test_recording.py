"""The consumer's side of the queue: a batch's messages recorded in one statement keep each
lead's order, and a redelivered batch adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from services.webhooks.recording import record_many
from tests.support.common import Database
from tests.support.webhooks import messages, scored, subscribe, webhook_settings


async def test_a_batch_keeps_each_leads_order_and_a_redelivered_one_adds_nothing(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    created = await subscribe(db, settings, "http://127.0.0.1:9/hook")  # never sent to
    leads = [uuid4() for _ in range(3)]
    batch = [scored(lead, score=n) for n in range(4) for lead in leads]  # interleaved
    now = datetime.now(UTC)
    async with db.sessions.begin() as session:
        first = await record_many(session, batch, settings=settings, now=now)
    async with db.sessions.begin() as session:
        again = await record_many(session, batch, settings=settings, now=now)
    recorded = sorted(await messages(db, created.id), key=lambda m: m.seq)
    assert first.count == again.count == len(batch) == len(recorded)
    for lead in leads:
        in_seq_order = [m.event_id for m in recorded if m.lead_id == str(lead)]
        assert in_seq_order == [str(e.id) for e in batch if e.subject == str(lead)]
