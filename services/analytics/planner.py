"""The reverse funnel: from a revenue target, the bookings, opportunities, SQLs, MQLs and
inquiries needed, month by month and source by source, and the month the pipeline already open
falls short. Pure: the ratios, lags and source mix come measured from the funnel (reports.py) or
entered by hand (a new source or experiment without history).

- The target's **expansion** share is booked from existing customers; the rest, **net-new**, is
  worked backwards through the funnel. Each month's net-new revenue ÷ the average deal is the
  bookings it needs; ÷ opportunity → booking the opportunities, ÷ SQL → opportunity the SQLs,
  ÷ MQL → SQL the MQLs, ÷ inquiry → MQL the inquiries. Each step is needed earlier by the median
  lag between the two stages (in whole months, rounded), so the first months of a plan may need
  inquiries before the plan starts: those are already late.
- **Per source**: a source's share of the bookings (measured) and its own inquiry → booking
  yield give the inquiries it must bring; a source without bookings yet gets no share.
- **Shortfall**: the opportunities and SQLs open now are expected to book at the same rates,
  their bookings landing after the lags; the first month whose bookings needed so far exceed
  those expected so far is where the open pipeline falls short.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.analytics.funnel import STAGES
from services.analytics.goals import month_after

STEPS = tuple(zip(STAGES, STAGES[1:], strict=False))
"""(inquiry, mql), (mql, sql), (sql, opportunity), (opportunity, booking)."""
DAYS_PER_MONTH = 30.44


@dataclass(frozen=True, slots=True)
class PlanInputs:
    months: Sequence[str]
    """The months the revenue is to be booked in (YYYY-MM), in order."""
    target: float
    """The revenue to book over those months."""
    expansion_share: float
    deal_size: float
    """The average booking."""
    rates: Mapping[tuple[str, str], float]
    """Each step's conversion (``STEPS``), 0 < rate ≤ 1."""
    lag_days: Mapping[tuple[str, str], float] = field(default_factory=dict)
    """Each step's median days (none: 0)."""
    sources: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Source → (its share of the bookings, its inquiry → booking yield)."""
    open_opportunities: int = 0
    open_sqls: int = 0
    """Open now: SQLs without an opportunity yet, opportunities neither booked nor lost."""


@dataclass(frozen=True, slots=True)
class MonthNeed:
    month: str
    bookings: float
    """Net-new bookings to close this month."""
    opportunities: float
    sqls: float
    mqls: float
    inquiries: float
    """What must happen this month for the bookings of later months."""
    expected_bookings: float
    """Bookings this month from the pipeline open now."""


@dataclass(frozen=True, slots=True)
class Plan:
    months: list[MonthNeed]
    """From the first month anything is needed (it may precede the plan's) to its last."""
    revenue: float
    expansion_revenue: float
    net_new_revenue: float
    bookings: float
    inquiries_by_source: dict[str, float]
    """Over the whole plan."""
    short_from: str | None
    """The first month the open pipeline falls short (None: it covers the plan)."""
    late: float
    """Inquiries needed before the plan's first month began (already late)."""


class PlanInvalid(ValueError):
    pass


def shift(step: tuple[str, str], lag_days: Mapping[tuple[str, str], float]) -> int:
    return round(lag_days.get(step, 0.0) / DAYS_PER_MONTH)


def plan(inputs: PlanInputs) -> Plan:
    for step in STEPS:
        rate = inputs.rates.get(step)
        if rate is None or not 0 < rate <= 1:
            raise PlanInvalid(f"{step[0]} → {step[1]}: a rate above 0 and at most 1 is needed")
    if inputs.deal_size <= 0:
        raise PlanInvalid("the average deal must be above 0")
    if inputs.target <= 0 or not 0 <= inputs.expansion_share <= 1:
        raise PlanInvalid("the target must be above 0, its expansion share from 0 to 1")
    if any(days < 0 for days in inputs.lag_days.values()):
        raise PlanInvalid("lags are 0 days or more")
    if not inputs.months:
        raise PlanInvalid("no months to plan")
    net_new = inputs.target * (1 - inputs.expansion_share)
    per_month = net_new / len(inputs.months) / inputs.deal_size
    needs: dict[str, dict[str, float]] = {}

    def need(month: str, stage: str, count: float) -> None:
        needs.setdefault(month, {}).setdefault(stage, 0.0)
        needs[month][stage] += count

    for month in inputs.months:
        count, when = per_month, month
        need(when, "booking", count)
        for step in reversed(STEPS):
            count /= inputs.rates[step]
            when = month_after(when, -shift(step, inputs.lag_days))
            need(when, step[0], count)
    expected = _expected(inputs)
    span = sorted(set(needs) | set(inputs.months))
    first, last = span[0], inputs.months[-1]
    months, cursor = [], first
    while cursor <= last:
        found = needs.get(cursor, {})
        months.append(
            MonthNeed(
                month=cursor,
                bookings=found.get("booking", 0.0),
                opportunities=found.get("opportunity", 0.0),
                sqls=found.get("sql", 0.0),
                mqls=found.get("mql", 0.0),
                inquiries=found.get("inquiry", 0.0),
                expected_bookings=expected.get(cursor, 0.0),
            )
        )
        cursor = month_after(cursor, 1)
    bookings = per_month * len(inputs.months)
    shares = sum(share for share, _ in inputs.sources.values())
    by_source = {
        source: bookings * share / shares / yield_
        for source, (share, yield_) in sorted(inputs.sources.items())
        if shares > 0 and share > 0 and yield_ > 0
    }
    return Plan(
        months=months,
        revenue=inputs.target,
        expansion_revenue=inputs.target * inputs.expansion_share,
        net_new_revenue=net_new,
        bookings=bookings,
        inquiries_by_source=by_source,
        short_from=_short_from(months, inputs.months),
        late=sum(m.inquiries for m in months if m.month < inputs.months[0]),
    )


def _expected(inputs: PlanInputs) -> dict[str, float]:
    """Bookings the open pipeline brings, by month: open opportunities after the opportunity →
    booking lag, open SQLs after the SQL → opportunity lag as well. From the plan's first month."""
    start = inputs.months[0]
    to_booking = STEPS[-1]
    to_opportunity = STEPS[-2]
    expected: dict[str, float] = {}
    from_opportunities = inputs.open_opportunities * inputs.rates[to_booking]
    month = month_after(start, shift(to_booking, inputs.lag_days))
    expected[month] = expected.get(month, 0.0) + from_opportunities
    from_sqls = inputs.open_sqls * inputs.rates[to_opportunity] * inputs.rates[to_booking]
    later = month_after(month, shift(to_opportunity, inputs.lag_days))
    expected[later] = expected.get(later, 0.0) + from_sqls
    return expected


def _short_from(months: list[MonthNeed], planned: Sequence[str]) -> str | None:
    needed = expected = 0.0
    for month in months:
        if month.month < planned[0]:
            continue
        needed += month.bookings
        expected += month.expected_bookings
        if needed > expected + 1e-9:
            return month.month
    return None


def round_up(count: float) -> int:
    """A need as a whole number: 2.1 leads are 3."""
    return math.ceil(count - 1e-9)
