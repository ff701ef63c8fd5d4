"""A ``lead.qualified`` published before an erasure but read by the webhook consumer after it
is recorded with the person in it (the erasure's own step ran before it existed): the
``lead.erased`` behind it on the topic scrubs that message too. On both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import orjson

from services.webhooks.handlers import RecordDeliveries
from shared.events import LeadErased, LeadErasedData, decode
from tests.support.common import Database
from tests.support.crm_servers import qualified_event
from tests.support.webhooks import messages, subscribe, webhook_settings


async def test_a_handoff_read_after_the_erasure_is_scrubbed_by_the_erased_event(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    created = await subscribe(db, settings, "http://127.0.0.1:9/hook", ["*"])
    document = qualified_event({"consent.flags": {"contact": True}})
    handoff = decode(orjson.dumps(document))
    lead = UUID(handoff.key)
    email = document["data"]["contact"]["email"]
    erased = LeadErased.about_lead(
        lead,
        LeadErasedData(lead_id=lead, reason="erasure request"),
        source="/t",
        time=datetime.now(UTC),
    )
    handler = RecordDeliveries(settings)

    async with db.sessions.begin() as session:
        await handler.handle_batch([handoff], session=session, now=datetime.now(UTC))
    [message] = await messages(db, created.id)
    assert email in message.payload

    async with db.sessions.begin() as session:
        await handler.handle_batch([erased], session=session, now=datetime.now(UTC))
    kept, told = await messages(db, created.id)
    assert email not in kept.payload and "Northwind" not in kept.payload
    assert told.event_type == "lead.erased"
