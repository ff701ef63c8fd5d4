"""End to end through the broker: a form lead is scored and routed, its owner's clock starts,
nobody answers, the clock breaches and escalates with a reassignment that routing carries out,
the next owner's clock starts and their response meets it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from services.routing.main import add_sample_team, start_routing
from services.sla_monitor.main import start_sla_monitor
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import Stack, distinct_events, read_topic, running_stack
from tests.support.sla import activate

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


@asynccontextmanager
async def sla_monitor(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings)
    runtime.start_relay("sla-relay")
    start_sla_monitor(runtime)
    try:
        yield runtime
    finally:
        await runtime.close()


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
