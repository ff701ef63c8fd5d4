"""End to end through the broker: engagement posted later re-scores a lead and can promote it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scoring import store, versions
from shared.broker import EmbeddedBroker
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import distinct_events, read_topic, running_stack

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}


async def test_a_demo_request_posted_later_makes_an_inquiry_an_mql(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    # The sample rules, but a form alone (15 points) is not enough engagement for an MQL.
    text = store.DEFAULT_RULESET.read_text().replace("min_engagement: 15", "min_engagement: 50")
    assert "min_engagement: 50" in text
    async with running_stack(settings, activate_rules=False) as stack:
        async with stack.intake.sessions.begin() as session:
            assert await versions.bootstrap(session, settings, text, now=datetime.now(UTC))
        body = {"email": "grace@navy.example", "company": "US Navy", "first_name": "Grace"}
        posted = await stack.client.post("/v1/leads", json=body)
        assert posted.status_code == 202
        lead_id = posted.json()["lead_id"]

        async def shown() -> dict:
            response = await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)
            return response.json()  # type: ignore[no-any-return]

        async def scored_times(n: int) -> dict | None:
            lead = await shown()
            kinds = [h["kind"] for h in lead["history"]]
            return lead if kinds.count("lead.scored") >= n else None

        first = await eventually(lambda: scored_times(1))
        assert first["stage"] == "inquiry"

        demo = {"type": "demo_request"}
        made = await stack.client.post(f"/v1/leads/{lead_id}/activities", json=demo, headers=AUTH)
        assert made.status_code in (201, 202), made.text
        promoted = await eventually(lambda: scored_times(2))
        assert promoted["stage"] == "mql"

        why = (await stack.client.get(f"/v1/leads/{lead_id}/explain", headers=AUTH)).json()
        assert {r["rule"] for r in why["engagement"]["rules"]} == {
            "form-submitted",
            "demo-requested",
        }
        assert [(t["from"], t["to"], t["cause"]) for t in why["transitions"]] == [
            ("inquiry", "mql", "rules")
        ]

        records = await read_topic(
            settings,
            settings.topics.lifecycle,
            until=lambda read: len(distinct_events(read, lead_id)) >= 3,
        )
        types = [event["type"] for event in distinct_events(records, lead_id)]
        assert types == ["lead.scored", "lead.scored", "lead.mql"]
