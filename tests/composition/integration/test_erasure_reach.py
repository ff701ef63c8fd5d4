"""Erasure reaches every copy of the person's data — activities, outcomes, ad-platform records,
events in the outbox, webhook messages and attempts — in one transaction, keeps the anonymous
facts, and leaves other leads alone; on both databases, over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import insert, select

from services.intake.models import LeadActivityRow, LeadOutcomeRow, PlatformLead
from services.webhooks.models import DeliveryAttempt, Subscription, WebhookMessage
from shared.ids import new_id
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database
from tests.support.intake import AUTH, client_for, intake, rows

GOOGLE_KEY = "google-key"
EMAIL = "ada@example.com"


def google_lead(lead_id: str, email: str) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "form_id": 42,
        "campaign_id": 7,
        "gcl_id": "gcl-of-ada",
        "google_key": GOOGLE_KEY,
        "user_column_data": [
            {"column_id": "EMAIL", "string_value": email},
            {"column_id": "FULL_NAME", "string_value": "Ada Lovelace"},
        ],
    }


async def person(client: httpx.AsyncClient, email: str, platform_id: str) -> str:
    """A lead with a platform record, an activity and an outcome that all quote the person."""
    posted = await client.post("/v1/ingest/google-ads", json=google_lead(platform_id, email))
    assert posted.status_code == 200, posted.text
    lead_id = str(posted.json()["lead_id"])
    activity = {"type": "page_view", "properties": {"url": f"https://x.test/?e={email}"}}
    outcome = {"outcome": "won", "amount": "500.00", "properties": {"contact": email}}
    for path, body in (("activities", activity), ("outcomes", outcome)):
        answer = await client.post(f"/v1/leads/{lead_id}/{path}", json=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
    return lead_id


async def webhook_copies(runtime: Runtime, lead_id: str, email: str) -> None:
    """A delivered message about the lead quoting the person, and the receiver's echo of it."""
    now = datetime.now(UTC)
    subscription_id = new_id()
    payload = json.dumps(
        {"id": str(new_id()), "type": "lead.routed", "data": {"lead_id": lead_id, "email": email}}
    )
    async with runtime.sessions.begin() as session:
        await session.execute(
            insert(Subscription.__table__).values(
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
        message = await session.execute(
            insert(WebhookMessage.__table__)
            .values(
                id=new_id(),
                subscription_id=subscription_id,
                event_id=str(new_id()),
                event_type="lead.routed",
                lead_id=lead_id,
                payload=payload,
                status="delivered",
                attempts=1,
                due_at=now,
                created_at=now,
            )
            .returning(WebhookMessage.__table__.c.seq)
        )
        await session.execute(
            insert(DeliveryAttempt.__table__).values(
                id=new_id(),
                message_seq=message.scalar_one(),
                subscription_id=subscription_id,
                lead_id=lead_id,
                event_type="lead.routed",
                attempted_at=now,
                status_code=200,
                latency_ms=3.0,
                outcome="delivered",
                response_excerpt=f'{{"received": "{email}"}}',
            )
        )


async def test_erasure_reaches_every_copy_and_keeps_the_anonymous_facts(db: Database) -> None:
    platforms = {"google_ads_key": GOOGLE_KEY}
    async with intake(db, platforms=platforms) as runtime:
        async with client_for(runtime) as client:
            lead_id = await person(client, EMAIL, "g-1")
            other_id = await person(client, "grace@example.com", "g-2")
            await webhook_copies(runtime, lead_id, EMAIL)
            await webhook_copies(runtime, other_id, "grace@example.com")

            erased = await client.delete(f"/v1/leads/{lead_id}", headers=AUTH)
        assert erased.status_code == 200, erased.text
        lead = UUID(lead_id)

        [activity] = await rows(runtime, LeadActivityRow, LeadActivityRow.lead_id == lead)
        assert (activity.kind, activity.properties) == ("page_view", {})
        [outcome] = await rows(runtime, LeadOutcomeRow, LeadOutcomeRow.lead_id == lead)
        assert (outcome.outcome, outcome.amount, outcome.properties) == ("won", Decimal(500), {})
        [record] = await rows(runtime, PlatformLead, PlatformLead.lead_id == lead)
        assert record.detail == {"form_id": 42, "campaign_id": 7}
        assert record.status == "stored" and record.platform_lead_id == "g-1"

        outbox = await rows(runtime, OutboxMessage, OutboxMessage.aggregate_id == lead_id)
        assert {m.type for m in outbox} >= {"lead.received", "lead.activity", "lead.erased"}
        assert not [m.payload for m in outbox if EMAIL in m.payload]
        [activity_event] = [json.loads(m.payload) for m in outbox if m.type == "lead.activity"]
        assert activity_event["data"]["detail"] == {}
        assert activity_event["data"]["kind"] == "page_view"
        [message] = await rows(runtime, WebhookMessage, WebhookMessage.lead_id == lead_id)
        assert EMAIL not in message.payload
        assert json.loads(message.payload)["data"] == {"lead_id": lead_id}
        [attempt] = await rows(runtime, DeliveryAttempt, DeliveryAttempt.lead_id == lead_id)
        assert attempt.response_excerpt is None and attempt.status_code == 200

        # Another person's copies are untouched.
        other = UUID(other_id)
        [kept] = await rows(runtime, LeadActivityRow, LeadActivityRow.lead_id == other)
        assert kept.properties == {"url": "https://x.test/?e=grace@example.com"}
        [kept_record] = await rows(runtime, PlatformLead, PlatformLead.lead_id == other)
        assert kept_record.detail["gcl_id"] == "gcl-of-ada"
        [kept_message] = await rows(runtime, WebhookMessage, WebhookMessage.lead_id == other_id)
        assert "grace@example.com" in kept_message.payload
        async with runtime.sessions() as session:
            others = (
                await session.scalars(
                    select(OutboxMessage.payload).where(
                        OutboxMessage.aggregate_id == other_id,
                        OutboxMessage.type == "lead.activity",
                    )
                )
            ).all()
        assert "grace@example.com" in others[0]
