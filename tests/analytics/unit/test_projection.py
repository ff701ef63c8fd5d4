"""A lead's funnel line folded from its facts (pure): the first time each stage was reached, in
whatever order the facts came; the original source; the latest routing; bookings counted once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from services.analytics.projection import (
    Definitions,
    Fact,
    fold,
    merge,
    segment_of,
    sourced_by,
)

LEAD = UUID("0193a1b2-0000-7000-8000-000000000001")
ANA, BO = uuid4(), uuid4()
T0 = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # 1 April in Berlin
UTC_DAYS = Definitions(ZoneInfo("UTC"), ((1, "smb"), (100, "mid-market"), (1000, "enterprise")))


def fact(kind: str, minutes: float, **detail: Any) -> Fact:
    return Fact(uuid4(), LEAD, kind, T0 + timedelta(minutes=minutes), detail)


HISTORY = [
    fact("received", 0, source="web", campaign="spring", medium="email", employees="250"),
    fact("received", 60, source="google-ads", campaign="123", ad_platform="google-ads"),
    fact("mql", 5, ruleset="v1"),
    fact("routed", 6, owner_id=str(ANA), team="emea", is_expansion=False),
    fact("routed", 90, owner_id=str(BO), team="emea", is_expansion=True),
    fact("sql", 120),
    fact("outcome", 200, outcome="opportunity", amount=1000.0, currency="EUR"),
    fact("outcome", 300, outcome="booked", amount=900.0, currency="EUR"),
    fact("outcome", 400, outcome="won", amount=950.0, currency="EUR"),
    fact("recycled", 500, reason="no_budget"),
    fact("mql", 600, ruleset="v2"),
]


def test_a_lead_with_its_whole_history() -> None:
    line = fold(HISTORY, UTC_DAYS)
    assert line is not None
    assert (line.cohort_at, line.cohort_day, line.cohort_month) == (T0, "2026-03-31", "2026-03")
    assert (line.source, line.campaign, line.medium, line.ad_platform, line.segment) == (
        "web", "spring", "email", None, "mid-market",
    )  # fmt: skip
    assert (line.team, line.owner_id, line.is_expansion) == ("emea", BO, True)
    assert line.ruleset == "v1"  # the version that first made it an MQL
    assert line.mql_at == T0 + timedelta(minutes=5)  # the first time, not the second
    assert line.sql_at == T0 + timedelta(minutes=120)
    assert line.opportunity_at == T0 + timedelta(minutes=200)
    assert line.booked_at == T0 + timedelta(minutes=300)  # booked, then won: one booking
    assert (line.booking_amount, line.opportunity_amount, line.currency) == (950.0, 1000.0, "EUR")
    assert line.lost_at is None and not line.is_test
    assert line.dropped_at == T0 + timedelta(minutes=500)  # recycled, then an MQL again


def test_any_order_of_the_facts_gives_the_same_line() -> None:
    expected, facts, shuffler = fold(HISTORY, UTC_DAYS), list(HISTORY), random.Random(7)
    for _ in range(200):
        shuffler.shuffle(facts)
        assert fold(facts, UTC_DAYS) == expected


def test_the_cohort_is_the_day_in_the_reporting_zone() -> None:
    berlin = Definitions(ZoneInfo("Europe/Berlin"), UTC_DAYS.segments)
    line = fold(HISTORY, berlin)
    assert line is not None and (line.cohort_day, line.cohort_month) == ("2026-04-01", "2026-04")


def test_no_line_before_the_inquiry_is_known() -> None:
    assert fold([f for f in HISTORY if f.kind != "received"], UTC_DAYS) is None
    assert fold([], UTC_DAYS) is None


def test_a_test_lead_is_marked_and_a_lost_one_dated() -> None:
    line = fold(
        [fact("received", 0, source="meta", is_test=True), fact("outcome", 3, outcome="lost")],
        UTC_DAYS,
    )
    assert line is not None and line.is_test and line.lost_at == T0 + timedelta(minutes=3)
    assert (line.booked_at, line.booking_amount, line.segment, line.owner_id) == (
        None, None, None, None,
    )  # fmt: skip


def test_credit_goes_to_marketing_for_an_mql_before_the_opportunity() -> None:
    line = fold(HISTORY, UTC_DAYS)
    assert line is not None and line.sourced_by == "marketing"
    sales = fold(
        [
            fact("received", 0),
            fact("outcome", 30, outcome="opportunity"),
            fact("mql", 40),  # after the opportunity: sales found it
        ],
        UTC_DAYS,
    )
    assert sales is not None and sales.sourced_by == "sales"
    assert sourced_by(None, T0) == "sales" and sourced_by(T0, T0) == "marketing"
    assert sourced_by(T0, None) is None


@pytest.mark.parametrize(
    ("employees", "segment"),
    [
        (0, None), (1, "smb"), (99, "smb"), (100, "mid-market"), ("250", "mid-market"),
        ("51-200", "smb"), ("1000+", "enterprise"), (5000.0, "enterprise"), ("many", None),
        (None, None), (True, None),
    ],
)  # fmt: skip
def test_segments_by_company_size(employees: Any, segment: str | None) -> None:
    assert segment_of(employees, UTC_DAYS.segments) == segment


def random_history(shuffler: random.Random, *, ties: bool) -> list[Fact]:
    """A lead's facts of every kind at random times (minutes 0–40: ties when ``ties``)."""
    spread = 40 if ties else 100_000

    def at() -> float:
        return shuffler.randrange(spread) if ties else shuffler.random() * spread

    kinds: list[tuple[str, dict[str, Any]]] = [
        ("received", {"source": "web", "employees": 120}),
        ("received", {"source": "meta", "employees": 5000}),
        ("mql", {"ruleset": "v1"}), ("mql", {"ruleset": "v2"}), ("sql", {}),
        ("routed", {"owner_id": str(ANA), "team": "emea", "is_expansion": False}),
        ("routed", {"owner_id": str(BO), "team": "amer", "is_expansion": True}),
        ("outcome", {"outcome": "opportunity", "amount": 100.0, "currency": "EUR"}),
        ("outcome", {"outcome": "opportunity", "amount": 150.0, "currency": "USD"}),
        ("outcome", {"outcome": "booked", "amount": 90.0, "currency": "EUR"}),
        ("outcome", {"outcome": "won", "amount": None}),
        ("outcome", {"outcome": "lost"}), ("recycled", {}), ("disqualified", {}),
    ]  # fmt: skip
    chosen = shuffler.sample(kinds, shuffler.randrange(1, len(kinds)))
    return [fact(kind, at(), **detail) for kind, detail in chosen]


@pytest.mark.parametrize("ties", [False, True])
def test_merging_facts_into_a_line_gives_what_folding_all_of_them_gives(ties: bool) -> None:
    """Any split of a lead's facts into what a line already holds and what comes next, in any
    order: the merge is the fold of all, or (at a tie it cannot order) says so."""
    shuffler, merged_some = random.Random(11), 0
    for _ in range(3000):
        facts = random_history(shuffler, ties=ties)
        shuffler.shuffle(facts)
        cut = shuffler.randrange(len(facts) + 1)
        earlier, later = facts[:cut], facts[cut:]
        line = fold(earlier, UTC_DAYS)
        if line is None:
            continue
        found = merge(line, later, UTC_DAYS)
        if found is not None:
            merged_some += 1
            assert found == fold(facts, UTC_DAYS)
    assert merged_some > 1000  # most splits merge
