"""Funnel maths (pure): Wilson intervals checked against published values, both views' rates, the
nearest-rank percentiles of the lags, and a group's report."""

from __future__ import annotations

import pytest

from services.analytics.funnel import (
    STAGES,
    Counts,
    Share,
    Split,
    lag,
    percentile,
    rate,
    report,
    stage_lines,
    wilson,
)


@pytest.mark.parametrize(
    ("converted", "base", "low", "high"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Statistics in Medicine 17, table I, method 3
        (5, 10, 0.2366, 0.7634),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
    ],
)
def test_wilson_interval_matches_published_values(
    converted: int, base: int, low: float, high: float
) -> None:
    found = wilson(converted, base)
    assert found is not None
    assert found == (pytest.approx(low, abs=5e-5), pytest.approx(high, abs=5e-5))


def test_no_interval_without_a_base_or_for_more_than_the_base() -> None:
    assert wilson(0, 0) is None
    assert wilson(3, 2) is None
    above = rate(3, 2)
    assert (above.rate, above.low, above.high) == (1.5, None, None)
    assert rate(0, 0).rate is None


def test_a_small_base_is_marked() -> None:
    assert rate(4, 29).small and not rate(4, 30).small


def test_both_views_rate_each_stage_from_the_one_before() -> None:
    lines = stage_lines([10, 4, 3, 2, 1], [10, 4, 2, 2, 1])
    assert [line.stage for line in lines] == list(STAGES)
    assert lines[0].reached_rate is None and lines[0].in_order_rate is None
    sql = lines[2]
    assert (sql.reached, sql.in_order) == (3, 2)
    assert sql.reached_rate is not None and sql.reached_rate.rate == 0.75
    assert sql.in_order_rate is not None and sql.in_order_rate.rate == 0.5
    with pytest.raises(ValueError, match="one count per stage"):
        stage_lines([1, 2], [1, 2])


def test_percentiles_are_nearest_rank() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 0.5) == 20.0  # the 2nd of 4
    assert percentile(values, 0.9) == 40.0  # the 4th: ceil(3.6)
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([], 0.5) is None


def test_a_groups_report() -> None:
    counts = Counts(
        group="web",
        reached=[4, 2, 1, 1, 1],
        in_order=[4, 2, 1, 1, 1],
        bookings_amount=900.0,
        priced_bookings=1,
        pipeline_amount=1000.0,
        lags={
            ("inquiry", "mql"): lag("inquiry", "mql", [180.0, 60.0]),
            ("mql", "sql"): lag("mql", "sql", [3600.0]),
        },
    )
    found = report(counts)
    assert (found.bookings, found.bookings_amount, found.average_booking) == (1, 900.0, 900.0)
    assert [(g.from_stage, g.to_stage, g.leads, g.p50_s, g.p90_s) for g in found.lags] == [
        ("inquiry", "mql", 2, 60.0, 180.0),
        ("mql", "sql", 1, 3600.0, 3600.0),
        ("sql", "opportunity", 0, None, None),
        ("opportunity", "booking", 0, None, None),
    ]
    unpriced = report(Counts(group=None, reached=[1, 1, 1, 1, 1], in_order=[1, 1, 1, 1, 1]))
    assert (unpriced.bookings, unpriced.average_booking) == (1, None)


def test_a_split_credits_the_rest_to_sales_and_net_new() -> None:
    split = Split(all=Share(5, 500.0), marketing=Share(3, 200.0), expansion=Share(1, 100.0))
    assert split.shares() == {
        "all": Share(5, 500.0),
        "marketing": Share(3, 200.0),
        "sales": Share(2, 300.0),
        "expansion": Share(1, 100.0),
        "net_new": Share(4, 400.0),
    }
    doubled = split + split
    assert doubled.shares()["sales"] == Share(4, 600.0)
