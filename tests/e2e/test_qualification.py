"""End to end through the broker: form post → MQL → CRM acceptance posted → SQL, explained."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord

from shared.broker import EmbeddedBroker
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import distinct_events, read_topic, running_stack

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}


async def test_a_form_lead_becomes_mql_then_sql_once_sales_accepts(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    async with running_stack(settings) as stack:
        body = {"email": "grace@navy.example", "company": "US Navy", "first_name": "Grace"}
        posted = await stack.client.post("/v1/leads", json=body)
        assert posted.status_code == 202
        lead_id = posted.json()["lead_id"]

        async def at(stage: str) -> dict | None:
            shown = (await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
            return shown if shown["stage"] == stage else None

        shown_ruleset = (await eventually(lambda: at("mql")))["ruleset"]  # the live sample
        assert shown_ruleset.startswith("v1-")
        accepted = await stack.client.post(
            f"/v1/leads/{lead_id}/outcomes", json={"outcome": "accepted"}, headers=AUTH
        )
        assert accepted.status_code in (201, 202), accepted.text
        await eventually(lambda: at("sql"))

        explained = await stack.client.get(f"/v1/leads/{lead_id}/explain", headers=AUTH)
        assert explained.status_code == 200, explained.text
        why = explained.json()
        assert why["stage"] == "sql" and why["ruleset"] == shown_ruleset
        assert why["fit"] == {
            "score": 30,
            "grade": "C",
            "rules": [
                {"rule": "business-email", "points": 20, "count": 1},
                {"rule": "company-given", "points": 10, "count": 1},
            ],
        }
        assert [r["rule"] for r in why["engagement"]["rules"]] == ["form-submitted"]
        assert [(t["from"], t["to"], t["cause"]) for t in why["transitions"]] == [
            ("inquiry", "mql", "rules"),
            ("mql", "sal", "outcome"),
            ("sal", "sql", "rules"),
        ]
        assert "business-email" in why["transitions"][0]["rules"]
        assert why["promoted_by"]["to"] == "sql" and why["next_stage"] == "opportunity"
        assert why["missing"] == ["an opportunity: the CRM posts the outcome 'opportunity'"]

        records = await read_topic(
            settings,
            settings.topics.lifecycle,
            until=lambda read: len(distinct_events(read, lead_id)) >= 4,
        )
        events = distinct_events(records, lead_id)
        types = [e["type"] for e in events]
        assert types == ["lead.scored", "lead.mql", "lead.scored", "lead.sql"]
        assert {e["ruleset"] for e in events} == {why["ruleset"]}
        assert events[3]["data"]["from_stage"] == "sal"

        # Accepted again, at SQL: the lifecycle refuses the move back to SAL, and the timeline
        # says so once, beside intake's one entry for each outcome posted.
        again = await stack.client.post(
            f"/v1/leads/{lead_id}/outcomes", json={"outcome": "accepted"}, headers=AUTH
        )
        assert again.status_code in (201, 202), again.text

        async def refused() -> list[dict] | None:
            shown = (await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
            kinds = [h["kind"] for h in shown["history"]]
            return shown["history"] if "lead.outcome.refused" in kinds else None

        history = await eventually(refused)
        kinds = [h["kind"] for h in history]
        assert kinds.count("lead.outcome") == 2 and kinds.count("lead.outcome.refused") == 1
        (note,) = [h for h in history if h["kind"] == "lead.outcome.refused"]
        assert note["detail"]["outcome"] == "accepted" and "sal" in note["detail"]["refused"]
        assert (await at("sql")) is not None


def _about(record: ConsumerRecord, lead_id: str) -> bool:
    return record.key == lead_id.encode()
