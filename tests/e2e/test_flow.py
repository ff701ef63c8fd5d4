"""End to end through the real broker: web form → intake → outbox → Kafka → scoring → outbox."""

from __future__ import annotations

import json
from uuid import uuid4

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from services.scoring.main import activate_sample_rules
from shared.broker import EmbeddedBroker
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import read_topic, running_stack

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}


async def test_a_posted_lead_is_scored_and_shown(db: Database, broker: EmbeddedBroker) -> None:
    settings = make_settings(db, broker)
    async with running_stack(settings) as stack:
        [lead_id] = await stack.post_leads(1)

        async def scored() -> dict | None:
            shown = (await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
            return shown if shown["score"] is not None else None

        shown = await eventually(scored)
        assert shown["score"] == 30  # rules/default.yaml: business email (20) + company (10)
        kinds = [h["kind"] for h in shown["history"]]
        assert kinds == ["lead.received", "lead.scored", "lead.mql"]

        def types(records: list) -> set[str]:  # type: ignore[type-arg]
            return {json.loads(r.value)["type"] for r in records}

        records = await read_topic(
            settings,
            settings.topics.lifecycle,
            until=lambda read: {"ruleset.activated", "lead.scored"} <= types(read),
        )
        by_type = {json.loads(r.value)["type"]: r for r in records}
        activated = json.loads(by_type["ruleset.activated"].value)  # the sample rules go live
        scored = json.loads(by_type["lead.scored"].value)
        assert shown["ruleset"] == activated["data"]["label"]
        assert scored["subject"] == lead_id and by_type["lead.scored"].key == lead_id.encode()
        assert scored["ruleset"] == shown["ruleset"]


async def test_leads_wait_unscored_until_a_ruleset_is_live(
    db: Database, broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(db, broker)
    async with running_stack(settings, activate_rules=False) as stack:
        [lead_id] = await stack.post_leads(1)
        # The consumer has the lead's event and waits (retrying) rather than score it.
        await eventually(lambda: any("NotReady" in r.getMessage() for r in caplog.records))
        shown = (await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
        assert (shown["score"], shown["stage"]) == (None, "inquiry")  # no unsigned rules

        await activate_sample_rules(stack.intake)

        async def scored() -> dict | None:
            shown = (await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
            return shown if shown["score"] is not None else None

        shown = await eventually(scored)
        assert shown["stage"] == "mql"
        assert [h["kind"] for h in shown["history"]] == ["lead.received", "lead.scored", "lead.mql"]


async def test_a_thousand_concurrent_leads_are_each_scored_exactly_once(
    pg: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(pg, broker)
    async with running_stack(settings) as stack:
        lead_ids = await stack.post_leads(1000)
        await eventually(stack.all_scored, within=60)
        counts = await stack.scored_counts()
        assert set(counts) == set(lead_ids)
        assert set(counts.values()) == {1}
        assert await stack.emitted("lead.scored") == 1000


async def test_two_relays_and_two_scoring_consumers_score_each_lead_once(
    pg: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(pg, broker)
    async with running_stack(settings, scoring_processes=2, intake_relays=2) as stack:
        lead_ids = await stack.post_leads(1000)
        await eventually(stack.all_scored, within=60)
        counts = await stack.scored_counts()
        assert set(counts) == set(lead_ids) and set(counts.values()) == {1}
        assert await stack.emitted("lead.scored") == 1000
        records = await read_topic(settings, settings.topics.intake, expect=1000)
        ids = [json.loads(r.value)["id"] for r in records]
        assert len(ids) >= 1000 and len(set(ids)) == 1000


async def test_leads_posted_while_the_broker_is_down_are_all_scored_once_it_is_back(
    pg: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outage = EmbeddedBroker(log_path=tmp_path_factory.mktemp("outage") / "broker.log")
    outage.start()
    settings = make_settings(pg, outage)
    try:
        async with running_stack(settings) as stack:
            before = await stack.post_leads(300)
            await eventually(lambda: _some_scored(stack, 1), within=60)
            outage.stop()  # memory storage: topics, records and offsets are gone
            during = await stack.post_leads(400)  # intake keeps answering 202
            outage.start()
            after = await stack.post_leads(300)
            try:
                await eventually(stack.all_scored, within=90)
            except AssertionError as error:
                raise AssertionError(f"{error}; {await stack.progress()}") from None
            counts = await stack.scored_counts()
            assert set(counts) == set(before + during + after)
            assert set(counts.values()) == {1}
    finally:
        outage.stop()


async def _some_scored(stack, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await stack.scored_counts()) >= n


async def test_a_poison_message_is_dead_lettered_and_the_partition_moves_on(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, consumer={"max_attempts": 2, "retry_backoff_s": 0})
    async with running_stack(settings) as stack:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        key = b"same-key"  # one partition: the good message waits behind the poison
        missing_lead = str(uuid4())
        try:
            await producer.send_and_wait(settings.topics.intake, b"{not json", key=key)
            await producer.send_and_wait(
                settings.topics.intake,
                orjson.dumps(
                    {
                        "specversion": "1.0",
                        "id": str(uuid4()),
                        "source": "/test",
                        "type": "lead.received",
                        "subject": missing_lead,
                        "time": "2026-11-23T12:00:00Z",
                        "data": {
                            "lead_id": missing_lead,
                            "inquiry_id": str(uuid4()),
                            "source": "web",
                            "new_lead": True,
                        },
                    }
                ),
                key=key,
            )
        finally:
            await producer.stop()
        [lead_id] = await stack.post_leads(1)
        await eventually(lambda: _some_scored(stack, 1), within=60)
        assert list(await stack.scored_counts()) == [lead_id]

        letters = await read_topic(settings, settings.topics.dead_letter, expect=2)
        assert len(letters) == 2
        bodies = sorted((json.loads(r.value) for r in letters), key=lambda b: b["offset"])
        assert bodies[0]["error"].startswith("UndecodableEvent")
        assert bodies[0]["payload"] == "{not json"
        assert bodies[0]["attempts"] == 1
        assert bodies[1]["error"].startswith("LeadMissing")
        assert bodies[1]["attempts"] == 2
        assert missing_lead in bodies[1]["payload"]
        for body in bodies:
            assert body["topic"] == settings.topics.intake
            assert body["consumer"] == "scoring"
        assert bodies[1]["offset"] == bodies[0]["offset"] + 1
