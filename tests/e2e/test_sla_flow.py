"""End to end through the broker: a form lead is scored and routed, its owner's clock starts,
nobody answers, the clock breaches and escalates with a reassignment that routing carries out,
the next owner's clock starts and their response meets it. Along the way the owners and the
manager are mailed (a real SMTP server) and a subscriber gets every sla.* event as a signed
webhook (a real HTTP receiver)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.routing.main import add_sample_team, start_routing
from services.sla_monitor.main import start_sla_monitor
from services.webhooks.main import start_webhooks
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import Stack, distinct_events, read_topic, running_stack
from tests.support.receiver import Receiver
from tests.support.sla import activate
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}
FAST = """
name: e2e
contacts: {manager: [manager@example.com]}
policies:
  - id: fast
    first_response:
      within: 5s
      ladder:
        - {at: 100%, notify: [manager]}
        - {at: 100% + 1s, reassign: true}
"""


SAMPLE_OWNERS = {"ana@example.com", "bo@example.com", "chen@example.com"}
PUBLIC_URL = "https://leadflow.example"


@asynccontextmanager
async def closing(runtime: Runtime) -> AsyncIterator[Runtime]:
    """Close ``runtime`` at the end, and fail if one of its background tasks died meanwhile."""
    try:
        yield runtime
    finally:
        failed = [t for t in runtime.tasks if t.done() and not t.cancelled() and t.exception()]
        await runtime.close()
        assert not failed, f"background task died: {failed[0].exception()!r}"


@asynccontextmanager
async def sla_monitor(settings: Settings) -> AsyncIterator[Runtime]:
    """The SLA monitor's process: its relay, the consumer, the sweep and the email notifier."""
    async with closing(Runtime.create(settings)) as runtime:
        runtime.start_relay("sla-relay")
        start_sla_monitor(runtime)
        yield runtime


@asynccontextmanager
async def webhooks_service(settings: Settings) -> AsyncIterator[Runtime]:
    """The webhook service's process: its relay, the consumer and the dispatcher."""
    async with closing(Runtime.create(settings)) as runtime:
        runtime.start_relay("webhooks-relay")
        start_webhooks(runtime)
        yield runtime


async def _sla_events(stack: Stack, lead_id: str) -> list[dict[str, Any]]:
    async with stack.intake.sessions() as session:
        query = (
            select(OutboxMessage.payload)
            .where(OutboxMessage.aggregate_id == lead_id, OutboxMessage.type.startswith("sla."))
            .order_by(OutboxMessage.seq)
        )
        return [json.loads(p) for p in await session.scalars(query)]


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def test_an_unanswered_lead_breaches_is_reassigned_and_the_next_owner_meets_it(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, sla={"sweep_interval_ms": 50})
    async with running_stack(settings) as stack, sla_monitor(settings) as monitor:
        start_routing(stack.workers[0])
        assert await add_sample_team(stack.intake)
        async with stack.intake.sessions.begin() as session:
            await activate(session, settings, text=FAST)
        await eventually(monitor.consumers["sla-monitor"].is_set)
        await eventually(stack.workers[0].consumers["routing"].is_set)
        body = {"email": "ada@engines.example", "company": "Analytical Engines"}
        posted = await stack.client.post("/v1/leads", json=body)
        assert posted.status_code == 202, posted.text
        lead_id = posted.json()["lead_id"]

        async def started_twice() -> list[dict[str, Any]] | None:
            found = _of(await _sla_events(stack, lead_id), "sla.started")
            return found if len(found) == 2 else None

        first, second = await eventually(started_twice, within=60)
        assert first["data"]["owner_id"] != second["data"]["owner_id"]
        events = await _sla_events(stack, lead_id)
        assert [e["type"] for e in events[:4]] == [
            "sla.started", "sla.breached", "sla.escalated", "sla.cancelled",
        ]  # fmt: skip
        assert events[1]["data"]["notify"] == ["manager@example.com"]
        assert (
            events[2]["data"]["reassign"]
            and events[2]["data"]["owner_id"] == (first["data"]["owner_id"])
        )
        assert events[3]["data"]["reason"] == "reassigned"
        answered = await stack.client.post(
            f"/v1/leads/{lead_id}/outcomes", json={"outcome": "responded"}, headers=AUTH
        )
        assert answered.status_code in (201, 202), answered.text

        async def met() -> list[dict[str, Any]]:
            return _of(await _sla_events(stack, lead_id), "sla.met")

        [done] = await eventually(met, within=30)
        assert done["data"]["owner_id"] == second["data"]["owner_id"]
        assert done["data"]["breached"] is False
        clocks = await stack.client.get(f"/v1/sla/leads/{lead_id}/clocks", headers=AUTH)
        assert [(c["owner_id"], c["state"]) for c in clocks.json()] == [
            (first["data"]["owner_id"], "cancelled"),
            (second["data"]["owner_id"], "met"),
        ]
        records = await read_topic(
            settings,
            settings.topics.sla,
            until=lambda read: "sla.met" in {e["type"] for e in distinct_events(read, lead_id)},
        )
        on_topic = [e["type"] for e in distinct_events(records, lead_id)]
        assert on_topic[:3] == ["sla.started", "sla.breached", "sla.escalated"]
        assert UUID(lead_id)


async def test_the_owners_and_the_manager_are_mailed_and_a_subscriber_gets_each_sla_event(
    db: Database, broker: EmbeddedBroker
) -> None:
    async with SmtpServer() as smtp, Receiver() as crm:
        settings = make_settings(
            db,
            broker,
            sla={"sweep_interval_ms": 50},
            http={"public_url": PUBLIC_URL},
            smtp={"host": "127.0.0.1", "port": smtp.port, "tls": "none"},
            webhooks={"allowed_networks": ["127.0.0.0/8"], "poll_interval_ms": 50},
        )
        async with (
            running_stack(settings) as stack,
            sla_monitor(settings) as monitor,
            webhooks_service(settings) as webhooks,
        ):
            start_routing(stack.workers[0])
            assert await add_sample_team(stack.intake)
            async with stack.intake.sessions.begin() as session:
                await activate(session, settings, text=FAST)
            subscribed = await stack.client.post(
                "/v1/subscriptions",
                json={"url": crm.url(), "event_types": ["sla.*"]},
                headers=AUTH,
            )
            assert subscribed.status_code == 201, subscribed.text
            secret = subscribed.json()["secret"]
            for runtime, consumer in [
                (monitor, "sla-monitor"),
                (monitor, "sla-notifier"),
                (stack.workers[0], "routing"),
                (webhooks, "webhooks"),
            ]:
                await eventually(runtime.consumers[consumer].is_set)
            body = {"email": "ada@engines.example", "company": "Analytical Engines"}
            posted = await stack.client.post("/v1/leads", json=body)
            assert posted.status_code == 202, posted.text
            lead_id = posted.json()["lead_id"]

            async def started_twice() -> list[dict[str, Any]] | None:
                found = _of(await _sla_events(stack, lead_id), "sla.started")
                return found if len(found) == 2 else None

            # Answer at once: the next owner's clock would breach too after 5 s.
            first, second = await eventually(started_twice, within=60)
            answered = await stack.client.post(
                f"/v1/leads/{lead_id}/outcomes", json={"outcome": "responded"}, headers=AUTH
            )
            assert answered.status_code in (201, 202), answered.text

            # Email: the first owner is told of the new lead (tier 0), the manager of the breach
            # (the 100% tier rides on it), the next owner of the lead they were given.
            owners = [first["data"]["owner_email"], second["data"]["owner_email"]]
            assert set(owners) <= SAMPLE_OWNERS and owners[0] != owners[1]
            new_lead, breach, handed_over = await smtp.wait_for(3, within=30)
            assert [m.rcpt_tos for m in (new_lead, breach, handed_over)] == [
                [owners[0]], ["manager@example.com"], [owners[1]],
            ]  # fmt: skip
            link = f"{PUBLIC_URL}/v1/leads/{lead_id}/explain"
            for mail in (new_lead, handed_over):
                assert mail.to == mail.rcpt_tos[0]
                assert mail.subject.startswith("New lead for you: ")
                assert "Analytical Engines" in mail.subject and "Analytical Engines" in mail.body
                assert "ada@engines.example" in mail.body and link in mail.body
                assert mail.message["X-Leadflow-Lead"] == lead_id
            assert breach.to == "manager@example.com"
            assert (
                breach.subject.startswith("Breached: ") and "Analytical Engines" in breach.subject
            )
            assert f"no first response from {owners[0]}" in breach.body and link in breach.body

            # Webhooks: every sla.* event staged for the lead reaches the subscriber, signed, in
            # the order it was staged (one lead's messages are delivered in order).
            [done] = await eventually(lambda: _met(crm, secret, lead_id), within=30)
            assert done["data"]["owner_id"] == second["data"]["owner_id"]
            staged = await _sla_events(stack, lead_id)
            assert [e["type"] for e in staged] == [
                "sla.started", "sla.breached", "sla.escalated", "sla.cancelled",
                "sla.started", "sla.met",
            ]  # fmt: skip
            delivered = _delivered(crm, secret, lead_id)
            assert [(e["id"], e["type"]) for e in delivered] == [
                (e["id"], e["type"]) for e in staged
            ]
            assert [e["data"] for e in delivered] == [e["data"] for e in staged]
            assert len(smtp.received) == 3  # escalated, cancelled and met name no one to mail
            forged = crm.received[0]
            with pytest.raises(WebhookVerificationError):
                Webhook(secret).verify(forged.body + b" ", forged.headers)


def _delivered(crm: Receiver, secret: str, lead_id: str) -> list[dict[str, Any]]:
    """The webhooks the receiver got about the lead, each verified and each once (delivery is at
    least once), in the order they arrived."""
    events: dict[str, dict[str, Any]] = {}
    for request in crm.received:
        event = Webhook(secret).verify(request.body, request.headers)
        assert request.headers["webhook-id"] == event["id"]
        if event["subject"] == lead_id:
            events.setdefault(event["id"], event)
    return list(events.values())


def _met(crm: Receiver, secret: str, lead_id: str) -> list[dict[str, Any]]:
    return _of(_delivered(crm, secret, lead_id), "sla.met")
