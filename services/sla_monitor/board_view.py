"""What the ops board shows of a clock and of attainment: the words, the times, the bar widths.
Pure.

A clock's row is made here once, for the page and for the live events alike (``Row``), so the
page's script only copies these values into the row's cells; it computes nothing but the
countdown (``static/board.js`` formats time left as ``time_left`` does here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from services.sla_monitor.schemas import AttainmentView, ClockView


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    lead: str
    kind: str
    owner: str
    team: str
    policy: str
    deadline: str
    deadline_iso: str
    left: str
    breached: str
    breached_iso: str
    escalations: str
    status: str
    tone: str
    """on-time, warning, overdue, breached, acknowledged, closed: the row's colour."""
    open: bool
    ackable: bool

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


BLANK = Row(
    **dict.fromkeys((f.name for f in fields(Row) if f.type == "str"), ""),
    open=False,
    ackable=False,
)
"""The row the page keeps as a template for the clocks that appear live."""


def row_of(clock: ClockView) -> Row:
    escalations = sum(1 for t in clock.tiers if t.fired and t.step == "escalate")
    return Row(
        id=str(clock.id),
        lead=str(clock.lead_id),
        kind=clock.kind.replace("_", " "),
        owner=clock.owner_email or "(unassigned)",
        team=clock.team or "-",
        policy=clock.policy,
        deadline=shown_time(clock.deadline),
        deadline_iso=clock.deadline.isoformat(),
        left="" if clock.time_left_s is None else time_left(clock.time_left_s),
        breached=shown_time(clock.breached_at),
        breached_iso=clock.breached_at.isoformat() if clock.breached_at else "",
        escalations=str(escalations) if escalations else "-",
        status=_status(clock, escalations),
        tone=_tone(clock),
        open=clock.state == "open",
        ackable=clock.state == "open" and clock.acknowledged_at is None,
    )


def _status(clock: ClockView, escalations: int) -> str:
    if clock.state != "open":
        late = clock.closed_at is not None and clock.closed_at > clock.deadline
        return f"{clock.state} late" if clock.state == "met" and late else clock.state
    if clock.acknowledged_at is not None:
        return f"acknowledged by {clock.acknowledged_by}"
    if clock.breached_at is not None:
        return "breached, escalated" if escalations else "breached"
    return _tone(clock).replace("-", " ")


def _tone(clock: ClockView) -> str:
    if clock.state != "open":
        return "closed"
    if clock.acknowledged_at is not None:
        return "acknowledged"
    if clock.breached_at is not None:
        return "breached"
    if clock.time_left_s is not None and clock.time_left_s < 0:
        return "overdue"
    warned = any(t.fired and t.step == "warning" for t in clock.tiers)
    return "warning" if warned else "on-time"


def shown_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""


def time_left(seconds: float) -> str:
    """``12m 05s``, ``1h 02m``, ``2d 03h``; ``-`` in front once the deadline passed."""
    whole = int(abs(seconds))
    sign = "-" if seconds < 0 and whole else ""
    if whole >= 86_400:
        return f"{sign}{whole // 86_400}d {whole % 86_400 // 3600:02d}h"
    if whole >= 3600:
        return f"{sign}{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{sign}{whole // 60}m {whole % 60:02d}s"


@dataclass(frozen=True, slots=True)
class Bar:
    """One team's attainment line; widths are 0…100 (the SVG bars' viewBox)."""

    group: str
    clocks: int
    attainment: str
    attainment_width: float
    p50: str
    p50_width: float
    p90: str
    p90_width: float


def bars(lines: Sequence[AttainmentView]) -> list[Bar]:
    """Attainment as a share of 100; owner p50/p90 against the slowest p90 on the board."""
    longest = max((line.owner_p90_s or 0.0 for line in lines), default=0.0) or 1.0
    return [
        Bar(
            group=line.group,
            clocks=line.clocks,
            attainment=f"{line.attainment_pct:g}%",
            attainment_width=round(line.attainment_pct, 1),
            p50=_duration(line.owner_p50_s),
            p50_width=round(100 * (line.owner_p50_s or 0.0) / longest, 1),
            p90=_duration(line.owner_p90_s),
            p90_width=round(100 * (line.owner_p90_s or 0.0) / longest, 1),
        )
        for line in lines
    ]


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else time_left(seconds)
