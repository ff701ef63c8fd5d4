"""The funnel end to end through the broker: leads posted to intake as a web form does, scored
and routed by a scoring process, CRM outcomes posted back; the analytics process consumes the
intake and lifecycle topics, and ``GET /v1/funnel`` counts each lead in each stage it reached,
by source, with the booking's amount."""

from __future__ import annotations

from datetime import UTC, datetime

from services.analytics.main import start_analytics
from services.intake.analytics import inquiry_origins
from services.routing.main import add_sample_team
from shared.broker import EmbeddedBroker
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import running_stack
from tests.support.intake import AUTH

HOT = {
    "email": "ada@analytical-engines.co.uk",
    "company": "Analytical Engines Ltd",
    "title": "VP Engineering",
    "website": "https://www.analytical-engines.co.uk",
    "utm": {"source": "newsletter", "medium": "email", "campaign": "spring-launch"},
    "custom": {"employees": 250},
}
COLD = {"email": "sam@gmail.com", "company": "Sam's"}


async def test_posted_leads_and_outcomes_reach_the_funnel(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    analytics = Runtime.create(settings)
    try:
        start_analytics(analytics, inquiry_origins)
        async with running_stack(settings) as stack:
            await add_sample_team(stack.intake)
            hot = (await stack.client.post("/v1/leads", json=HOT)).json()["lead_id"]
            await stack.client.post("/v1/leads", json=COLD)

            async def funnel(**params: str) -> dict | None:
                response = await stack.client.get("/v1/funnel", params=params, headers=AUTH)
                assert response.status_code == 200, response.text
                return response.json()  # type: ignore[no-any-return]

            async def counted(reached: list[int]) -> dict | None:
                found = await funnel(by="campaign")
                total = found["total"] if found else None
                stages = [s["reached"] for s in total["stages"]] if total else None
                return found if stages == reached else None

            await eventually(lambda: counted([2, 1, 0, 0, 0]))
            for outcome, amount in (("accepted", None), ("opportunity", 12000), ("booked", 9000)):
                body = {"outcome": outcome, "amount": amount, "currency": "EUR" if amount else None}
                posted = await stack.client.post(
                    f"/v1/leads/{hot}/outcomes",
                    json={k: v for k, v in body.items() if v is not None},
                    headers=AUTH,
                )
                assert posted.status_code in (201, 202), posted.text
            found = await eventually(lambda: counted([2, 1, 1, 1, 1]))
            total = found["total"]
            assert [s["in_order"] for s in total["stages"]] == [2, 1, 1, 1, 1]
            assert (total["bookings"], total["bookings_amount"]) == (1, 9000.0)
            assert total["pipeline_amount"] == 12000.0
            assert {g["group"]: g["stages"][1]["reached"] for g in found["groups"]} == {
                "spring-launch": 1,
                None: 0,
            }
            today = datetime.now(UTC).date().isoformat()
            by_segment = await funnel(by="segment", **{"from": today})
            assert by_segment is not None
            assert {g["group"] for g in by_segment["groups"]} == {"mid-market", None}
    finally:
        await analytics.close()
