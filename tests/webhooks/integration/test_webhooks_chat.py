"""Chat notifications: a ``slack``-format subscription receives a one-line message through the
same dispatcher (signed, logged, replayable), beside a ``cloudevents`` one, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from standardwebhooks import Webhook

from services.webhooks import store
from services.webhooks.models import WebhookMessage
from services.webhooks.schemas import SubscriptionPatch
from shared.config import Settings
from tests.support.common import Database, eventually
from tests.support.receiver import Receiver
from tests.support.webhooks import (
    attempts,
    breached,
    dispatching,
    emit,
    messages,
    subscribe,
    webhook_settings,
)


async def test_a_slack_subscription_gets_a_chat_line_and_a_cloudevents_one_the_event(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    async with Receiver() as chat, Receiver() as crm, dispatching(db, settings):
        slack = await subscribe(db, settings, chat.url(), ["sla.*"], format="slack")
        plain = await subscribe(db, settings, crm.url(), ["sla.*"])
        event = breached()
        await emit(db, settings, event)
        [posted] = await eventually(lambda: chat.received)
        [delivered] = await eventually(lambda: crm.received)
        [attempt] = await eventually(lambda: attempts(db, slack.id))
    body = Webhook(slack.secret).verify(posted.body, posted.headers)  # signed all the same
    assert set(body) == {"text", "blocks"}
    assert body["text"] == (
        f":rotating_light: SLA breached — lead {event.subject} (owner ana@example.com, team emea):"
        " first_response deadline 2026-03-02T10:30Z passed (policy hot)"
    )
    assert posted.headers["webhook-id"] == str(event.id)
    assert posted.headers["content-type"] == "application/json"
    cloudevent = Webhook(plain.secret).verify(delivered.body, delivered.headers)
    assert cloudevent == event.model_dump(mode="json", exclude_none=True)
    assert (attempt.status_code, attempt.outcome) == (200, "delivered")
    assert (attempt.event_type, attempt.lead_id) == ("sla.breached", event.subject)
    [message] = await messages(db, slack.id)
    assert message.payload.encode() == posted.body  # the queue holds the body as sent


async def test_the_chat_line_is_made_from_what_consent_lets_subscribers_see(db: Database) -> None:
    settings = webhook_settings(
        db, consent_fields=[*webhook_settings(db).webhooks.consent_fields, "owner_email"]
    )
    slack = await subscribe(db, settings, "http://127.0.0.1:9/chat", ["sla.*"], format="slack")
    plain = await subscribe(db, settings, "http://127.0.0.1:9/crm", ["sla.*"])
    event = breached()
    await emit(db, settings, event)
    [chat_message] = await messages(db, slack.id)
    [crm_message] = await messages(db, plain.id)
    assert "owner_email" not in orjson.loads(crm_message.payload)["data"]
    text = orjson.loads(chat_message.payload)["text"]
    assert "ana@example.com" not in chat_message.payload
    assert f"lead {event.subject} (team emea):" in text


async def test_a_replay_sends_what_was_sent_and_a_new_format_applies_to_new_messages(
    db: Database,
) -> None:
    settings = webhook_settings(db)
    async with Receiver() as chat, dispatching(db, settings):
        slack = await subscribe(db, settings, chat.url(), ["sla.*"], format="slack")
        first = breached()
        await emit(db, settings, first)
        [sent] = await eventually(lambda: _delivered(db, slack.id, 1))
        await _change(db, settings, slack.id, SubscriptionPatch(format="cloudevents"))
        second = breached()
        await emit(db, settings, second)
        await eventually(lambda: _delivered(db, slack.id, 2))
        async with db.sessions.begin() as session:
            await store.replay_message(session, slack.id, sent.id, now=datetime.now(UTC))
        await eventually(lambda: len(chat.received) == 3)
    original, new, replayed = chat.received
    assert "text" in original.json() and new.json()["id"] == str(second.id)
    assert replayed.body == original.body
    assert replayed.headers["webhook-id"] == str(first.id)


async def _delivered(db: Database, subscription_id: UUID, n: int) -> list[WebhookMessage] | None:
    rows = await messages(db, subscription_id)
    done = len(rows) == n and all(m.status == "delivered" for m in rows)
    return rows if done else None


async def _change(db: Database, settings: Settings, subscription_id: UUID, patch: Any) -> None:
    async with db.sessions.begin() as session:
        await store.change(
            session, subscription_id, patch, settings=settings.webhooks, now=datetime.now(UTC)
        )
