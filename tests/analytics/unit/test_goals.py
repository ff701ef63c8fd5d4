"""Goals (pure): the YAML both teams sign, each month's goals, the actuals a month's lines give,
the gap and the run-rate forecast."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from services.analytics.api import period_months
from services.analytics.goals import Activity, GoalsInvalid, actuals, compile_goals, progress
from shared.problems import Problem

GOALS = """
name: FY2027
start: 2026-12
revenue: {target: 1200000, expansion_share: 0.25}
deal_size: {smb: 8000, default: 20000}
monthly: {mqls: 400, mql_to_sql: 0.35, opportunities: 120, bookings: 30}
months:
  2027-01: {mqls: 300, bookings_amount: 50000}
teams: {emea: {bookings: 10}}
owners: {Ana@Example.com: {bookings: 3}}
"""


def test_each_months_goals() -> None:
    goals = compile_goals(GOALS)
    assert (
        goals.months[0] == "2026-12" and goals.months[-1] == "2027-11" and len(goals.months) == 12
    )
    december = goals.shared("2026-12")
    assert december == {
        "bookings_amount": 100000.0, "mqls": 400, "mql_to_sql": 0.35, "opportunities": 120,
        "bookings": 30,
    }  # fmt: skip
    january = goals.shared("2027-01")
    assert (january["mqls"], january["bookings_amount"], january["bookings"]) == (300, 50000, 30)
    assert goals.shared("2027-12") == {} and goals.shared("2026-11") == {}
    assert goals.of_team("emea", "2027-03") == {"bookings": 10}
    assert goals.of_owner("ana@example.com", "2027-03") == {"bookings": 3}
    assert goals.of_team("amer", "2027-03") == {} and goals.of_team("emea", "2028-01") == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("start: [", "not YAML"),
        ("- a list", "a YAML mapping"),
        (GOALS.replace("start: 2026-12", "start: 2026-13"), "start: Value error, '2026-13' is no"),
        (GOALS.replace("2027-01: {", "January: {"), "months: Value error, 'January' is no month"),
        (GOALS.replace("mql_to_sql: 0.35", "mql_to_sql: 35"), "monthly.mql_to_sql: Input should"),
        (GOALS.replace("expansion_share: 0.25", "expansion_share: -1"), "revenue.expansion_share"),
        (GOALS.replace("bookings: 30}", "bookings: 30, calls: 5}"), "monthly.calls: Extra inputs"),
        (GOALS.replace("smb: 8000", "smb: 0"), "deal_size: Value error, deal sizes are above 0"),
        ("name: x\nstart: 2026-12\n", "revenue: Field required"),
    ],
)  # fmt: skip
def test_invalid_goals_say_where(text: str, problem: str) -> None:
    with pytest.raises(GoalsInvalid) as raised:
        compile_goals(text)
    assert any(problem in p for p in raised.value.problems), raised.value.problems


def line(**values: Any) -> Activity:
    base: dict[str, Any] = {
        "team": None, "owner_email": None, "mql_at": None, "sql_at": None,
        "opportunity_at": None, "booked_at": None, "booking_amount": None, "sourced_by": None,
        "is_expansion": None,
    }  # fmt: skip
    return Activity(**(base | values))


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def test_a_months_actuals() -> None:
    lines = [
        line(team="emea", owner_email="ana@example.com", mql_at=at(3, 2), sql_at=at(4, 20),
             opportunity_at=at(3, 10), booked_at=at(3, 20), booking_amount=950.0,
             sourced_by="marketing", is_expansion=True),
        line(team="emea", mql_at=at(3, 5)),
        line(opportunity_at=at(3, 30), booked_at=at(4, 2), booking_amount=500.0,
             sourced_by="sales", is_expansion=False),
        line(mql_at=at(2, 27), sql_at=at(3, 3)),  # an MQL of February: not March's
    ]  # fmt: skip

    def month_of(when: datetime) -> str | None:
        month = when.strftime("%Y-%m")
        return month if month in ("2026-03", "2026-04") else None

    found = actuals(lines, month_of)
    march = found[("2026-03", None, None)]
    assert (march["mqls"], march["mql_to_sql"], march["opportunities"]) == (2, 0.5, 2)
    assert (march["bookings"], march["bookings_amount"]) == (1, 950.0)
    assert (march["marketing_bookings"], march["marketing_amount"], march["expansion_amount"]) == (
        1, 950.0, 950.0,
    )  # fmt: skip
    april = found[("2026-04", None, None)]
    assert (april["mqls"], april["bookings"], april["bookings_amount"]) == (0, 1, 500.0)
    assert april["marketing_bookings"] == 0
    assert found[("2026-03", "emea", None)]["mqls"] == 2
    assert found[("2026-03", None, "ana@example.com")]["bookings"] == 1
    assert ("2026-02", None, None) not in found


def test_the_gap_and_the_run_rate_of_the_month_under_way() -> None:
    goals = {"mqls": 400.0, "mql_to_sql": 0.35}
    under_way = progress(
        goals, {"mqls": 100.0, "mql_to_sql": 0.5, "bookings": 3.0}, "2026-04", date(2026, 4, 10)
    )
    lines = {p.metric: p for p in under_way}
    assert (lines["mqls"].gap, lines["mqls"].forecast) == (-300.0, 300.0)  # 100 in 10 of 30 days
    assert lines["mql_to_sql"].forecast is None and lines["mql_to_sql"].gap == pytest.approx(0.15)
    assert (lines["bookings"].goal, lines["bookings"].gap, lines["bookings"].forecast) == (
        None,
        None,
        9.0,
    )
    done = progress(goals, {"mqls": 410.0}, "2026-03", date(2026, 4, 10))
    assert (done[0].gap, done[0].forecast) == (10.0, None)


def test_the_months_a_progress_report_covers() -> None:
    today = date(2026, 12, 7)
    planned = compile_goals(GOALS).months
    assert period_months(planned, None, None, today) == planned
    assert period_months(None, None, None, today)[0] == "2026-01"
    assert period_months(None, None, None, today)[-1] == "2026-12"
    later = period_months(planned, "2027-02", None, today)
    assert (later[0], later[-1], len(later)) == ("2027-02", "2027-11", 10)
    assert period_months(None, "2025-11", "2026-02", today) == [
        "2025-11",
        "2025-12",
        "2026-01",
        "2026-02",
    ]
    with pytest.raises(Problem, match="from must not be after to"):
        period_months(None, "2026-05", "2026-04", today)
    with pytest.raises(Problem, match="at most 36 months"):
        period_months(None, "2020-01", "2026-04", today)
