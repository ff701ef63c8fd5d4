"""The reverse funnel (pure), on numbers worked out by hand."""

from __future__ import annotations

import pytest

from services.analytics.planner import PlanInputs, PlanInvalid, plan, round_up

RATES = {
    ("inquiry", "mql"): 0.2, ("mql", "sql"): 0.5, ("sql", "opportunity"): 0.5,
    ("opportunity", "booking"): 0.3,
}  # fmt: skip
LAGS = {("mql", "sql"): 30.0, ("opportunity", "booking"): 61.0}  # one month, two months
MONTHS = ["2027-01", "2027-02", "2027-03"]


def inputs(**changes: object) -> PlanInputs:
    values: dict[str, object] = {
        "months": MONTHS, "target": 120_000.0, "expansion_share": 0.25, "deal_size": 10_000.0,
        "rates": RATES, "lag_days": LAGS,
        "sources": {"web": (0.6, 0.02), "events": (0.4, 0.05), "podcast": (0.0, 0.0)},
        "open_opportunities": 10, "open_sqls": 8,
    }  # fmt: skip
    return PlanInputs(**(values | changes))  # type: ignore[arg-type]


def test_the_needs_worked_backwards_month_by_month() -> None:
    """90,000 net-new a quarter at 10,000 a deal: 3 bookings a month; each needs 10
    opportunities two months before, 20 SQLs then, 40 MQLs a month before those, 200
    inquiries."""
    found = plan(inputs())
    assert (found.revenue, found.expansion_revenue, found.net_new_revenue) == (
        120_000.0, 30_000.0, 90_000.0,
    )  # fmt: skip
    table = {
        m.month: (m.bookings, m.opportunities, m.sqls, m.mqls, m.inquiries) for m in found.months
    }
    assert table == {
        "2026-10": (0, 0, 0, 40, 200),
        "2026-11": (0, 10, 20, 40, 200),
        "2026-12": (0, 10, 20, 40, 200),
        "2027-01": (3, 10, 20, 0, 0),
        "2027-02": (3, 0, 0, 0, 0),
        "2027-03": (3, 0, 0, 0, 0),
    }
    assert found.late == 600  # October to December's inquiries: before the plan began
    assert found.bookings == 9
    assert found.inquiries_by_source == {"events": pytest.approx(72), "web": pytest.approx(270)}


def test_the_month_the_open_pipeline_falls_short() -> None:
    # 10 open opportunities × 0.3 and 8 open SQLs × 0.5 × 0.3: 4.2 bookings, in March.
    found = plan(inputs())
    assert {m.month: m.expected_bookings for m in found.months}["2027-03"] == pytest.approx(4.2)
    assert found.short_from == "2027-01"  # January's 3 bookings have no open pipeline to land
    quick = plan(inputs(lag_days={}))  # everything lands at once: 4.2 covers January's 3
    assert quick.short_from == "2027-02"
    plenty = plan(inputs(lag_days={}, open_opportunities=40))  # 12 + 1.2 cover all 9
    assert plenty.short_from is None


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"rates": {**RATES, ("mql", "sql"): 0.0}}, "mql → sql"),
        ({"rates": {k: v for k, v in RATES.items() if k[0] != "inquiry"}}, "inquiry → mql"),
        ({"rates": {**RATES, ("sql", "opportunity"): 1.5}}, "sql → opportunity"),
        ({"deal_size": 0.0}, "average deal"),
        ({"months": []}, "no months"),
        ({"target": 0.0}, "target must be above 0"),
        ({"expansion_share": 1.5}, "expansion share"),
        ({"lag_days": {("mql", "sql"): -1.0}}, "lags are 0 days or more"),
    ],
)
def test_a_plan_needs_rates_a_deal_size_and_months(changes: dict, problem: str) -> None:
    with pytest.raises(PlanInvalid, match=problem):
        plan(inputs(**changes))


def test_needs_round_up() -> None:
    assert (round_up(2.1), round_up(3.0), round_up(0.0)) == (3, 3, 0)
