"""Funnel maths: counts per stage, conversion rates with their Wilson intervals, and the time
between stages. Pure: the counts come from the store's aggregation (store.py), the durations from
the leads that passed both stages.

Two views of one cohort:

- **reached**: the leads that reached each stage, by whatever path (a CRM may make a lead an SQL
  that never was an MQL). A rate is the next stage's count over this one's, so it can exceed 1.
- **in order**: the leads that passed every stage before it, each no later than the next. A rate
  is then the share of one stage's leads that went on to the next (never above 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

STAGES: tuple[str, ...] = ("inquiry", "mql", "sql", "opportunity", "booking")
Z_95 = 1.959963984540054
"""The standard normal quantile of a 95 % two-sided interval."""
SMALL = 30
"""Below this many leads in a rate's denominator the interval, not the bare rate, is the figure
to read (the report marks it)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A conversion from ``base`` leads to ``converted``, with its 95 % Wilson interval (None
    for the interval when the rate is not a share, i.e. above 1 in the reached view)."""

    converted: int
    base: int
    rate: float | None
    low: float | None
    high: float | None
    small: bool


@dataclass(frozen=True, slots=True)
class StageLine:
    stage: str
    reached: int
    in_order: int
    reached_rate: Rate | None
    """From the stage before (None for the first)."""
    in_order_rate: Rate | None


@dataclass(frozen=True, slots=True)
class Lag:
    """Time from one stage to the next, of the leads that passed both in order, in seconds."""

    from_stage: str
    to_stage: str
    leads: int
    p50_s: float | None
    p90_s: float | None


def wilson(converted: int, base: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of ``converted`` of ``base``; None without a base or when the
    count is no share of it (more converted than the base)."""
    if base <= 0 or not 0 <= converted <= base:
        return None
    share = converted / base
    z2 = z * z
    centre = (share + z2 / (2 * base)) / (1 + z2 / base)
    half = z * math.sqrt(share * (1 - share) / base + z2 / (4 * base * base)) / (1 + z2 / base)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(converted: int, base: int) -> Rate:
    interval = wilson(converted, base)
    return Rate(
        converted=converted,
        base=base,
        rate=converted / base if base else None,
        low=interval[0] if interval else None,
        high=interval[1] if interval else None,
        small=base < SMALL,
    )


def stage_lines(reached: Sequence[int], in_order: Sequence[int]) -> list[StageLine]:
    """One line per stage (``STAGES``' order) from the counts of both views."""
    if not len(reached) == len(in_order) == len(STAGES):
        raise ValueError(f"one count per stage ({len(STAGES)}) in each view")
    return [
        StageLine(
            stage=stage,
            reached=reached[i],
            in_order=in_order[i],
            reached_rate=rate(reached[i], reached[i - 1]) if i else None,
            in_order_rate=rate(in_order[i], in_order[i - 1]) if i else None,
        )
        for i, stage in enumerate(STAGES)
    ]


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0…1): the smallest value with at least that share
    of the values at or below it, as PostgreSQL's ``percentile_disc``; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def lag(from_stage: str, to_stage: str, durations: Sequence[float]) -> Lag:
    return Lag(
        from_stage=from_stage,
        to_stage=to_stage,
        leads=len(durations),
        p50_s=percentile(durations, 0.5),
        p90_s=percentile(durations, 0.9),
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """A group's counts as the store aggregates them: per stage, in ``STAGES``' order."""

    group: Any
    reached: Sequence[int]
    in_order: Sequence[int]
    bookings_amount: float = 0.0
    """The bookings' amounts (each booked lead's latest amount)."""
    priced_bookings: int = 0
    """The bookings that came with an amount."""
    pipeline_amount: float = 0.0
    """The opportunities' amounts."""
    lags: Mapping[tuple[str, str], Lag] = field(default_factory=dict)
    """From each stage to the next, of the leads that passed both in order (none: no lead)."""


def total_of(groups: Sequence[Counts], lags: Mapping[tuple[str, str], Lag]) -> Counts:
    """The counts of groups that part the same lines, added up; the lags of all of them (which
    do not add up) given."""
    n = len(STAGES)
    return Counts(
        group=None,
        reached=[sum(c.reached[i] for c in groups) for i in range(n)],
        in_order=[sum(c.in_order[i] for c in groups) for i in range(n)],
        bookings_amount=sum(c.bookings_amount for c in groups),
        priced_bookings=sum(c.priced_bookings for c in groups),
        pipeline_amount=sum(c.pipeline_amount for c in groups),
        lags=lags,
    )


@dataclass(frozen=True, slots=True)
class GroupReport:
    group: Any
    stages: list[StageLine]
    lags: list[Lag]
    bookings: int
    bookings_amount: float
    average_booking: float | None
    """Of the bookings with an amount."""
    pipeline_amount: float


def report(counts: Counts) -> GroupReport:
    """A group's funnel: both views with their rates, the lags, and the bookings."""
    bookings = counts.reached[-1]
    pairs = zip(STAGES, STAGES[1:], strict=False)
    return GroupReport(
        group=counts.group,
        stages=stage_lines(counts.reached, counts.in_order),
        lags=[counts.lags.get((a, b)) or lag(a, b, ()) for a, b in pairs],
        bookings=bookings,
        bookings_amount=counts.bookings_amount,
        average_booking=(
            counts.bookings_amount / counts.priced_bookings if counts.priced_bookings else None
        ),
        pipeline_amount=counts.pipeline_amount,
    )


@dataclass(frozen=True, slots=True)
class Share:
    count: int
    amount: float

    def __sub__(self, other: Share) -> Share:
        return Share(self.count - other.count, self.amount - other.amount)

    def __add__(self, other: Share) -> Share:
        return Share(self.count + other.count, self.amount + other.amount)


@dataclass(frozen=True, slots=True)
class Split:
    """A group's bookings (or opportunities) of a period, and the shares credited to marketing
    (``projection.sourced_by``) and to existing customers; sales and net-new are the rest (a
    lead never routed, so never matched to an account, counts as net-new)."""

    all: Share
    marketing: Share
    expansion: Share

    def __add__(self, other: Split) -> Split:
        return Split(
            self.all + other.all,
            self.marketing + other.marketing,
            self.expansion + other.expansion,
        )

    def shares(self) -> dict[str, Share]:
        return {
            "all": self.all,
            "marketing": self.marketing,
            "sales": self.all - self.marketing,
            "expansion": self.expansion,
            "net_new": self.all - self.expansion,
        }
