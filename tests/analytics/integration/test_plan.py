"""The revenue plan over a real database (SQLite and PostgreSQL): the live goals' target, the
funnel of the seven hand-computable leads (tests/support/analytics.py) measured for the rates,
lags, average deal and source mix, the pipeline open now; and the API."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import pytest

from services.analytics.reports import revenue_plan
from services.analytics.settings import AnalyticsSettings
from services.analytics.versions import GOALS
from shared.cosign import store as cosigned
from shared.problems import Problem
from shared.runtime import Runtime
from tests.support.analytics import GOALS_TEXT, apply, handler_for, leadflow, live, seed, story
from tests.support.common import Database, make_settings
from tests.support.intake import AUTH, client_for

TODAY = date(2026, 4, 30)
NOW = datetime(2026, 4, 30, tzinfo=UTC)


async def test_the_plan_from_the_goals_and_the_measured_funnel(db: Database) -> None:
    await live(db)
    async with db.sessions() as session:
        found = await revenue_plan(session, AnalyticsSettings(), today=TODAY, given={})
    inputs = {name: (i.value, i.origin) for name, i in found.inputs.items()}
    # In order over the cohorts: 4 of 6 inquiries became MQLs, 2 of 4 SQLs, 1 of 2 opened an
    # opportunity, 1 of 1 booked (A, 950); the medians: 30 minutes, 1, 7 and 10 days.
    assert inputs == {
        "target": (120000.0, "goals"),
        "expansion_share": (0.25, "goals"),
        "deal_size": (950.0, "measured"),
        "inquiry_to_mql": (pytest.approx(4 / 6), "measured"),
        "mql_to_sql": (0.5, "measured"),
        "sql_to_opportunity": (0.5, "measured"),
        "opportunity_to_booking": (1.0, "measured"),
        "inquiry_to_mql_days": (pytest.approx(30 / 1440), "measured"),
        "mql_to_sql_days": (1.0, "measured"),
        "sql_to_opportunity_days": (7.0, "measured"),
        "opportunity_to_booking_days": (10.0, "measured"),
    }
    bookings = 120000 * 0.75 / 12 / 950  # a month's net-new bookings: 7.89…
    assert found.months[0] == "2026-03" and len(found.months) == 12  # the goals' months
    march = found.needs[0]
    assert (march.month, march.bookings, march.opportunities, march.sqls, march.mqls) == (
        "2026-03", 8, 8, math.ceil(bookings / 0.5), math.ceil(bookings / 0.25),
    )  # fmt: skip
    assert march.inquiries == math.ceil(bookings / 0.25 / (4 / 6))  # lags under half a month
    assert (found.expansion_revenue, found.net_new_revenue) == (30000.0, 90000.0)
    assert found.bookings == math.ceil(bookings * 12)
    # web brought A's booking from 4 inquiries: all the bookings, a yield of 1 in 4
    assert found.inquiries_by_source == {"web": math.ceil(bookings * 12 / 0.25)}
    # Open now: E's opportunity (B lost, A booked): one booking expected in March, short of 8
    assert (found.open_opportunities, found.open_sqls) == (1, 0)
    assert march.expected_bookings == 1.0 and found.short_from == "2026-03"
    assert found.late_inquiries == 0


async def test_rates_given_by_hand_win_and_a_plan_needs_a_target(db: Database) -> None:
    await live(db)
    given = {"deal_size": 10000.0, "mql_to_sql": 0.4, "opportunity_to_booking_days": 61.0}
    async with db.sessions() as session:
        found = await revenue_plan(session, AnalyticsSettings(), today=TODAY, given=given)
    assert found.inputs["deal_size"].origin == found.inputs["mql_to_sql"].origin == "given"
    # 7,500 net-new a month ÷ 10,000: 0.75 bookings; their opportunities two months before
    assert [(n.month, n.bookings, n.opportunities) for n in found.needs[:3]] == [
        ("2026-01", 0, 1), ("2026-02", 0, 1), ("2026-03", 1, 1),
    ]  # fmt: skip
    assert found.late_inquiries > 0  # January's and February's needs came before the plan

    await db.clear()
    async with db.sessions() as session:
        with pytest.raises(Problem, match="give target") as raised:
            await revenue_plan(session, AnalyticsSettings(), today=TODAY, given={})
    assert raised.value.status == 409 and raised.value.extra["field"] == "target"


async def test_the_plan_api(live_runtime: Runtime) -> None:
    async with client_for(live_runtime, headers=AUTH) as client:
        response = await client.get("/v1/plan", params={"from": "2027-01", "deal_size": 5000})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["months"][0], body["months"][-1]) == ("2027-01", "2027-12")
        assert body["inputs"]["deal_size"] == {"value": 5000.0, "origin": "given"}
        assert body["needs"][0]["bookings"] == math.ceil(120000 * 0.75 / 12 / 5000)
        for params, field in (
            ({"mql_to_sql": 0}, "mql_to_sql"), ({"mql_to_sql": 1.5}, "mql_to_sql"),
            ({"from": "2027-13"}, "from"), ({"target": -5}, "target"),
        ):  # fmt: skip
            bad = await client.get("/v1/plan", params=params)
            assert bad.status_code == 422 and bad.json()["field"] == field, bad.text


async def test_the_plan_cli(
    live_runtime: Runtime, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    code, out = await leadflow(
        "goals", "plan", "--from", "2027-01", "--set", "deal_size=5000", "--json"
    )
    assert code == 0, out
    body = json.loads(out)
    assert body["inputs"]["deal_size"] == {"value": 5000.0, "origin": "given"}
    code, out = await leadflow("goals", "plan", "--set", "deal_size=5000")
    assert code == 0 and "Plan: 90,000 net-new of 120,000" in out, out
    assert "the open pipeline falls short from" in out
    code, out = await leadflow("goals", "plan", "--set", "mql_to_sql=1.5")
    assert code == 1 and "mql → sql: a rate above 0 and at most 1" in out, out
    code, out = await leadflow("goals", "plan", "--set", "calls=3")
    assert code == 2 and "'calls': one of target" in out


@pytest.mark.parametrize(
    ("sizes", "deal"),
    [
        ("{mid-market: 20000, smb: 4000}", (20000.0, "goals")),  # A's booking: mid-market
        ("{default: 7000}", (7000.0, "goals")),
        ("{smb: 4000}", (950.0, "measured")),  # no size for mid-market, no default
    ],
)
async def test_the_average_deal_from_the_goals_sizes_per_segment(
    db: Database, sizes: str, deal: tuple[float, str]
) -> None:
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)
    text = GOALS_TEXT + f"deal_size: {sizes}\n"
    async with db.sessions.begin() as session:
        await cosigned.bootstrap(session, make_settings(db), GOALS, text, by="tests", now=NOW)
    async with db.sessions() as session:
        found = await revenue_plan(session, AnalyticsSettings(), today=TODAY, given={})
    assert (found.inputs["deal_size"].value, found.inputs["deal_size"].origin) == deal
