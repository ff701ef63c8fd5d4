"""The dispatcher's metrics against a real HTTP receiver and a real database (both): a message
given up on counts once, when its schedule is spent, not at each failed attempt; an endpoint
disabled counts once."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.support.common import Database, eventually
from tests.support.receiver import Receiver, Reply
from tests.support.webhooks import dispatching, emit, messages, scored, subscribe, webhook_settings


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _exhausted(reason: str) -> float:
    return _sample("leadflow_webhook_messages_exhausted_total", reason=reason)


def _attempts(outcome: str) -> float:
    return _sample("leadflow_webhook_attempts_total", outcome=outcome)


async def _all(db: Database, subscription_id, status: str) -> bool:  # type: ignore[no-untyped-def]
    rows = await messages(db, subscription_id)
    return bool(rows) and all(m.status == status for m in rows)


async def test_a_message_whose_schedule_is_spent_counts_as_exhausted_once(db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0, 0.05, 0.05])
    spent, retried = _exhausted("retries_spent"), _attempts("retry")
    async with Receiver(lambda _r: Reply(500)) as receiver, dispatching(db, settings):
        created = await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored())
        await eventually(lambda: _attempts("retry") >= retried + 2)
        assert _exhausted("retries_spent") == spent  # two failures, one attempt left
        await eventually(lambda: _all(db, created.id, "exhausted"))
        await eventually(lambda: _exhausted("retries_spent") == spent + 1)
    assert _attempts("retry") == retried + 3
    assert _exhausted("retries_spent") == spent + 1


async def test_an_endpoint_that_answers_410_counts_as_disabled(db: Database) -> None:
    settings = webhook_settings(db)
    disabled = _sample("leadflow_webhook_endpoints_disabled_total")
    async with Receiver(lambda _r: Reply(410)) as receiver, dispatching(db, settings):
        await subscribe(db, settings, receiver.url())
        await emit(db, settings, scored(), scored())
        await eventually(lambda: receiver.count >= 1)
        await eventually(
            lambda: _sample("leadflow_webhook_endpoints_disabled_total") == disabled + 1
        )
    assert _sample("leadflow_webhook_endpoints_disabled_total") == disabled + 1
