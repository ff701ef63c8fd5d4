"""A relay of its own: ``leadflow intake`` and ``leadflow scoring`` run with their in-process relay
off (``LEADFLOW_OUTBOX__RELAY_IN_PROCESS=false``) and only write the outbox; until a
``leadflow relay`` process runs, nothing reaches the broker; once it runs, it publishes every
service's events: intake's ``lead.received``, then scoring's ``lead.scored``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select

from services.intake.keys.store import create_key
from services.scoring.main import activate_sample_rules
from shared.broker import EmbeddedBroker, free_port
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import distinct_events, read_topic
from tests.support.processes import environment, running

pytestmark = pytest.mark.e2e


async def test_services_without_their_relay_publish_through_a_relay_process(
    pg: Database, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = make_settings(pg, broker)
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        async with runtime.sessions.begin() as session:
            key, _ = await create_key(session, kind="public", now=datetime.now(UTC))
    finally:
        await runtime.close()
    intake_port, scoring_port, relay_port = free_port(), free_port(), free_port()
    env = environment(
        settings,
        LEADFLOW_OUTBOX__RELAY_IN_PROCESS="false",
        LEADFLOW_HTTP__INTAKE_PORT=str(intake_port),
        LEADFLOW_HTTP__SCORING_PORT=str(scoring_port),
        LEADFLOW_OUTBOX__RELAY_PORT=str(relay_port),
    )
    topics = settings.topics

    async def outbox(lead: str) -> list[tuple[str, bool]]:
        query = select(OutboxMessage.type, OutboxMessage.published_at).where(
            OutboxMessage.aggregate_id == lead
        )
        async with pg.sessions() as session:
            return [
                (kind, published is not None) for kind, published in await session.execute(query)
            ]

    async def published() -> bool:
        rows = await outbox(lead)
        return bool(rows) and all(done for _, done in rows)

    async with (
        running("intake", env, port=intake_port, logs=tmp_path) as intake,
        running("scoring", env, port=scoring_port, logs=tmp_path),
        httpx.AsyncClient(timeout=30) as client,
    ):
        posted = await client.post(
            f"{intake.url}/v1/leads",
            json={"email": "grace@example.com"},
            headers={"X-API-Key": key},
        )
        assert posted.status_code == 202, posted.text
        lead = posted.json()["lead_id"]
        assert UUID(lead)
        # No relay runs: a second of waiting for any record of the intake topic finds none.
        assert await read_topic(settings, topics.intake, expect=1, within=1.0) == []
        assert await outbox(lead) == [("lead.received", False)]  # waiting, in the outbox

        async with running("relay", env, port=relay_port, logs=tmp_path) as relay:
            received = await read_topic(settings, topics.intake, expect=1)
            assert [e["type"] for e in distinct_events(received, lead)] == ["lead.received"]
            # scoring consumed it and staged lead.scored, which the relay process publishes too
            scored = await read_topic(
                settings,
                topics.lifecycle,
                until=lambda read: (
                    "lead.scored" in {e["type"] for e in distinct_events(read, lead)}
                ),
            )
            assert "lead.scored" in {e["type"] for e in distinct_events(scored, lead)}
            await eventually(published)  # marked once the broker acknowledged them
            health = await client.get(f"{relay.url}/healthz")
            ready = await client.get(f"{relay.url}/readyz")
            metrics = await client.get(f"{relay.url}/metrics")
            assert health.status_code == ready.status_code == 200
            assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
            assert _published_total(metrics.text) >= 2
        readiness = (await client.get(f"{intake.url}/readyz")).json()
        assert "broker" not in readiness["checks"]  # intake alone never needs the broker now


def _published_total(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("leadflow_outbox_published_total "):
            return float(line.split()[1])
    raise AssertionError("no leadflow_outbox_published_total in /metrics")
