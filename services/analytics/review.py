"""The monthly source review: the tables the sales–marketing meeting opens as they are, and the
charts beside them (SVG drawn here: no script, no build step). Pure: the figures come from the
reports (reports.monthly_review), the page from templates/review.html, the CSV files from
``tables``.

- **Sources**: per source, the month's cohort (inquiries, MQLs, SQLs, bookings, MQL → SQL and
  SQL → booking in order, with their intervals where a base is small) beside its first-response
  SLA attainment that month and the bookings credited to it that month: which sources convert
  best, and whether answering them slowly costs anything.
- **Goals**: each shared goal of the month against its actual and gap.
- **Feedback**: the month's rejection, loss and recycle reasons by source, and the rules behind
  the month's MQLs that sales rejected most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

CHART_WIDTH, BAR_HEIGHT, LABEL_WIDTH = 560, 22, 140


@dataclass(frozen=True, slots=True)
class SourceLine:
    source: str
    inquiries: int
    mqls: int
    sqls: int
    bookings: int
    mql_to_sql: float | None
    mql_to_sql_interval: tuple[float, float] | None
    """Shown instead of the rate when its base is small."""
    sql_to_booking: float | None
    sql_to_booking_interval: tuple[float, float] | None
    sla_clocks: int
    sla_attainment_pct: float | None
    sla_p50_s: float | None
    booked_amount: float
    """Bookings of the month credited to the source (by the lead's original source)."""


@dataclass(frozen=True, slots=True)
class GoalLine:
    metric: str
    goal: float | None
    actual: float
    gap: float | None


@dataclass(frozen=True, slots=True)
class Review:
    month: str
    time_zone: str
    sources: list[SourceLine]
    goals: list[GoalLine]
    goals_version: int | None
    reasons: list[tuple[str, str, str, int]]
    """(source, kind, reason, count)."""
    rules: list[tuple[str, int, int, float]]
    """(rule, qualified, rejected, rejection rate)."""
    notes: list[str] = field(default_factory=list)


Table = tuple[list[str], list[list[Any]]]


def tables(review: Review) -> dict[str, Table]:
    """Each of the review's tables as CSV would hold it: headings and rows of plain values."""
    sources = [
        [
            s.source,
            s.inquiries,
            s.mqls,
            s.sqls,
            s.bookings,
            _plain(s.mql_to_sql),
            _plain(s.sql_to_booking),
            s.sla_clocks,
            _plain(s.sla_attainment_pct),
            _plain(s.sla_p50_s),
            s.booked_amount,
        ]  # fmt: skip
        for s in review.sources
    ]
    return {
        "sources": (
            [
                "source",
                "inquiries",
                "mqls",
                "sqls",
                "bookings",
                "mql_to_sql",
                "sql_to_booking",
                "sla_clocks",
                "sla_attainment_pct",
                "sla_p50_s",
                "booked_amount",
            ],  # fmt: skip
            sources,
        ),
        "goals": (
            ["metric", "goal", "actual", "gap"],
            [[g.metric, _plain(g.goal), _plain(g.actual), _plain(g.gap)] for g in review.goals],
        ),
        "feedback": (["source", "kind", "reason", "count"], [list(r) for r in review.reasons]),
        "rules": (
            ["rule", "qualified", "rejected", "rejection_rate"],
            [[rule, q, r, round(rate, 4)] for rule, q, r, rate in review.rules],
        ),
    }


def _plain(value: float | None) -> Any:
    """A figure for a CSV cell: blank when there is none, a whole number without ".0"."""
    if value is None:
        return ""
    return int(value) if float(value).is_integer() else round(value, 4)


def bar_chart(title: str, bars: Sequence[tuple[str, float | None]], *, percent: bool) -> str:
    """A horizontal bar chart as SVG markup: one bar per (label, value), scaled to the largest
    (or to 100 % for shares); a missing value is drawn as "–"."""
    known = [v for _, v in bars if v is not None]
    top = 1.0 if percent else max(known, default=0.0) or 1.0
    height = 30 + BAR_HEIGHT * len(bars)
    span = CHART_WIDTH - LABEL_WIDTH - 70
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" width="{CHART_WIDTH}" height="{height}" '
        f'aria-label="{escape(title)}">',
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = 26 + index * BAR_HEIGHT
        width = 0 if value is None else max(span * min(value / top, 1.0), 1)
        shown = "–" if value is None else (f"{value:.0%}" if percent else f"{value:,.0f}")
        parts += [
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{width:.1f}" height="{BAR_HEIGHT - 6}"'
            ' class="bar"/>',
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 14}">{escape(shown)}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def charts(review: Review) -> Mapping[str, str]:
    """The review's charts, by name, as SVG markup."""
    sources = review.sources
    return {
        "mql_to_sql": bar_chart(
            "MQL → SQL by source", [(s.source, s.mql_to_sql) for s in sources], percent=True
        ),
        "sql_to_booking": bar_chart(
            "SQL → booking by source", [(s.source, s.sql_to_booking) for s in sources], percent=True
        ),
        "sla": bar_chart(
            "First response in time by source",
            [
                (s.source, None if s.sla_attainment_pct is None else s.sla_attainment_pct / 100)
                for s in sources
            ],
            percent=True,
        ),  # fmt: skip
        "booked": bar_chart(
            "Booked this month by source",
            [(s.source, s.booked_amount) for s in sources],
            percent=False,
        ),  # fmt: skip
    }
