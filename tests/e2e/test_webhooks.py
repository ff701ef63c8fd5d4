"""End to end through the broker: a form post reaches a subscribed CRM receiver, signed, and so
does an escalation on the SLA topic."""

from __future__ import annotations

from uuid import UUID

import pytest
from standardwebhooks import Webhook

from services.webhooks.main import start_webhooks
from shared.broker import EmbeddedBroker
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import publish_escalation, running_stack
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}
WEBHOOKS = {"allowed_networks": ["127.0.0.0/8"], "poll_interval_ms": 50}


async def test_a_form_post_reaches_a_subscribed_receiver_as_a_signed_lead_mql(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, webhooks=WEBHOOKS)
    webhooks = Runtime.create(settings)
    webhooks.start_relay("webhooks-relay")
    start_webhooks(webhooks)
    try:
        async with Receiver() as crm, running_stack(settings) as stack:
            subscribed = await stack.client.post(
                "/v1/subscriptions",
                json={"url": crm.url(), "event_types": ["lead.mql", "sla.*"]},
                headers=AUTH,
            )
            assert subscribed.status_code == 201, subscribed.text
            secret = subscribed.json()["secret"]
            body = {"email": "grace@navy.example", "company": "US Navy", "first_name": "Grace"}
            posted = await stack.client.post("/v1/leads", json=body)
            assert posted.status_code == 202
            lead_id = posted.json()["lead_id"]

            [request] = await eventually(lambda: crm.received, within=60)
            event = Webhook(secret).verify(request.body, request.headers)
            assert event["type"] == "lead.mql" and event["subject"] == lead_id
            assert event["data"]["to_stage"] == "mql"
            assert request.headers["webhook-id"] == event["id"]

            await eventually(lambda: _logged(stack.client, lead_id), within=10)
            assert len(crm.received) == 1  # lead.received and lead.scored were not subscribed

            sent = await publish_escalation(settings, UUID(lead_id), reassign=False)
            await eventually(lambda: len(crm.received) == 2, within=30)
            escalation = Webhook(secret).verify(crm.received[1].body, crm.received[1].headers)
            assert escalation["type"] == "sla.escalated" and escalation["id"] == str(sent.id)
            assert escalation["data"]["policy"] == "first_response"
    finally:
        failed = [t for t in webhooks.tasks if t.done() and not t.cancelled() and t.exception()]
        await webhooks.close()
        assert not failed, f"background task died: {failed[0].exception()!r}"


async def _logged(client, lead_id: str) -> bool:  # type: ignore[no-untyped-def]
    response = await client.get(f"/v1/subscriptions/attempts?lead_id={lead_id}", headers=AUTH)
    return [a["status_code"] for a in response.json()] == [200]
