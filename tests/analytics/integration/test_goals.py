"""Goals over a real database (SQLite and PostgreSQL): the seven hand-computable leads of
tests/support/analytics.py against a co-signed goals version, month by month; then the goals'
API and CLI."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from services.analytics.reports import goals_progress
from services.analytics.settings import AnalyticsSettings
from shared.runtime import Runtime
from tests.support.analytics import GOALS_TEXT, apply, handler_for, leadflow, live, seed, story
from tests.support.common import Database
from tests.support.intake import AUTH, client_for


def by_metric(lines: list[Any]) -> dict[str, tuple[Any, ...]]:
    return {line.metric: (line.goal, line.actual, line.gap, line.forecast) for line in lines}


async def test_each_months_actuals_against_the_goals(db: Database) -> None:
    await live(db)
    async with db.sessions() as session:
        found = await goals_progress(
            session, AnalyticsSettings(), months=["2026-03", "2026-04"], today=date(2026, 4, 10)
        )
    assert (found.version, found.name) == (1, "Spring 2026")
    march, april = found.months
    # March: A and B became MQLs (both SQLs since), A opened an opportunity and booked 950.
    assert by_metric(march.shared) == {
        "mqls": (4, 2, -2, None),
        "mql_to_sql": (0.5, 1.0, 0.5, None),
        "opportunities": (2, 1, -1, None),
        "bookings": (1, 1, 0, None),
        "bookings_amount": (10000.0, 950.0, -9050.0, None),
    }
    assert (march.revenue.goal, march.revenue.expansion_goal, march.revenue.net_new_goal) == (
        10000.0, 2500.0, 7500.0,
    )  # fmt: skip
    assert (march.revenue.expansion, march.revenue.net_new) == (950.0, 0.0)  # A: a customer's
    assert (march.marketing.bookings, march.marketing.amount) == (1, 950.0)
    assert by_metric(march.teams["emea"])["mqls"] == (3, 2, -1, None)
    assert by_metric(march.owners["a1@example.com"])["bookings"] == (2, 1, -1, None)
    # April, ten days in: D and G became MQLs (neither an SQL yet), E opened an opportunity.
    april_lines = by_metric(april.shared)
    assert april_lines["mqls"] == (3, 2, -1, 6.0)  # 2 in 10 of 30 days: 6 at that rate
    assert april_lines["mql_to_sql"] == (0.5, 0.0, -0.5, None)
    assert april_lines["opportunities"] == (2, 1, -1, 3.0)
    assert april_lines["bookings"] == (1, 0, -1, 0.0)
    assert set(april.owners) == {"a1@example.com", "bo@example.com"}  # goals; G (reassigned)


async def test_without_goals_the_actuals_alone(db: Database) -> None:
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)
    async with db.sessions() as session:
        found = await goals_progress(
            session, AnalyticsSettings(), months=["2026-03"], today=date(2026, 12, 7)
        )
    assert (found.version, found.months[0].revenue.goal) == (None, None)
    assert by_metric(found.months[0].shared)["mqls"] == (None, 2, None, None)


async def test_the_goals_api(live_runtime: Runtime) -> None:
    async with client_for(live_runtime, headers=AUTH) as client:
        response = await client.get(
            "/v1/goals/progress", params={"from": "2026-03", "to": "2026-04"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert [m["month"] for m in body["months"]] == ["2026-03", "2026-04"]
        assert body["months"][0]["marketing"] == {"bookings": 1, "amount": 950.0}
        default = (await client.get("/v1/goals/progress")).json()  # the goals' twelve months
        assert [m["month"] for m in default["months"]][::11] == ["2026-03", "2027-02"]
        for params, field in (
            ({"from": "2026-13"}, "from"),
            ({"from": "2026-05", "to": "2026-04"}, "from"),
        ):
            bad = await client.get("/v1/goals/progress", params=params)
            assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
        invalid = await client.post(
            "/v1/goals/versions/validate", json={"content": "start: 2026-13"}
        )
        assert invalid.status_code == 422 and invalid.json()["field"] == "content"
        versions = (await client.get("/v1/goals/versions")).json()
        assert [(v["version"], v["status"]) for v in versions] == [(1, "active")]


async def test_the_goals_cli(
    live_runtime: Runtime, db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    code, out = await leadflow(
        "goals", "progress", "--from", "2026-03", "--to", "2026-04", "--json"
    )
    assert code == 0, out
    assert json.loads(out)["months"][1]["shared"][0]["actual"] == 2
    code, out = await leadflow("goals", "progress", "--from", "2026-03", "--to", "2026-03")
    assert code == 0 and "Goals: Spring 2026 (v1)" in out and "2 / 4" in out, out
    path = tmp_path / "goals.yaml"
    path.write_text(GOALS_TEXT.replace("mqls: 4", "mqls: 5"))
    code, out = await leadflow("goals", "validate", str(path), "--json")
    assert code == 0 and json.loads(out)["months"][0] == "2026-03", out
    code, out = await leadflow("goals", "progress", "--from", "March")
    assert code == 2 and "is no month" in out
