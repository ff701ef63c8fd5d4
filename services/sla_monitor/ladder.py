"""A clock's escalation ladder: which tier falls due when, and what firing it means. Pure.

A ladder is planned once, when its clock starts (the due instants in UTC, the recipients
resolved), and kept with the clock, so a policy changed later does not move a running clock's
deadlines. The deadline itself is always a tier (``breach``); tiers before it warn, tiers after it
escalate. An acknowledgement stops the notify tiers still to come, not the clock: the breach is
still recorded (telling nobody) and a reassignment still happens.

A clock closed (met or cancelled) before the sweep fired a tier that fell due while it was open
settles that tier as it closes (``settle``): what happened is recorded, nobody is told, nothing is
moved. No tier is lost: each due one either fires or is passed over, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from services.sla_monitor.policy import TargetSpec, tier_offset
from shared.calendars import BusinessCalendar

Step = Literal["warning", "breach", "escalate"]


@dataclass(frozen=True, slots=True)
class Tier:
    index: int
    """1, 2, …: the ladder's steps in due order (0 is the clock's start)."""
    at: str
    step: Step
    due: datetime
    notify: tuple[str, ...] = ()
    reassign: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "at": self.at,
            "step": self.step,
            "due": self.due.isoformat(),
            "notify": list(self.notify),
            "reassign": self.reassign,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tier:
        return cls(
            index=int(data["index"]),
            at=str(data["at"]),
            step=data["step"],
            due=datetime.fromisoformat(data["due"]),
            notify=tuple(data.get("notify", ())),
            reassign=bool(data.get("reassign", False)),
        )


Recipients = Callable[[list[str]], list[str]]


def plan_ladder(
    target: TargetSpec, *, started: datetime, calendar: BusinessCalendar, recipients: Recipients
) -> tuple[datetime, tuple[Tier, ...]]:
    """The clock's deadline and its tiers in due order; tiers at exactly the deadline that only
    notify are folded into the breach, which always exists."""
    within = target.target
    deadline = calendar.add(started, within)
    breach_notify: list[str] = []
    steps: list[tuple[timedelta, int, str, Step, list[str], bool]] = []
    for order, spec in enumerate(target.ladder):
        offset = tier_offset(spec.at, within)
        who = recipients(spec.notify)
        if offset == within and not spec.reassign:
            breach_notify += who
            continue
        step: Step = "warning" if offset < within else "escalate"
        steps.append((offset, order + 1, spec.at, step, who, spec.reassign))
    steps.append((within, 0, "100%", "breach", list(dict.fromkeys(breach_notify)), False))
    steps.sort(key=lambda s: (s[0], s[3] != "breach", s[1]))
    tiers = tuple(
        Tier(
            index=i + 1,
            at=at,
            step=step,
            due=deadline if step == "breach" else calendar.add(started, offset),
            notify=tuple(who),
            reassign=reassign,
        )
        for i, (offset, _order, at, step, who, reassign) in enumerate(steps)
    )
    return deadline, tiers


@dataclass(frozen=True, slots=True)
class Firing:
    tier: Tier
    notify: tuple[str, ...]
    late_by: timedelta
    late: bool
    reassign: bool
    """Carry out the tier's reassignment (never when it fires as its clock closes)."""


@dataclass(frozen=True, slots=True)
class PassedOver:
    tier: Tier
    reason: str
    """``acknowledged``, or how the clock closed before it fired: ``met``, ``cancelled``."""


@dataclass(frozen=True, slots=True)
class Progress:
    fired: list[Firing]
    passed: list[PassedOver]
    next_index: int
    """The next tier still to come (``len(tiers) + 1`` when the ladder is done)."""


def fire_due(
    tiers: Sequence[Tier],
    next_index: int,
    *,
    now: datetime,
    acknowledged: bool,
    late_after: timedelta,
) -> Progress:
    """The tiers from ``next_index`` (1-based) that are due at ``now``, in order. A notify-only
    tier after an acknowledgement is passed over: nothing fires for it."""
    fired: list[Firing] = []
    passed: list[PassedOver] = []
    for tier in _due(tiers, next_index, lambda due: due <= now):
        if acknowledged and tier.step != "breach" and not tier.reassign:
            passed.append(PassedOver(tier, "acknowledged"))
            continue
        notify = () if acknowledged else tier.notify
        fired.append(_firing(tier, notify, now, late_after, reassign=tier.reassign))
    return Progress(fired, passed, next_index + len(fired) + len(passed))


def settle(
    tiers: Sequence[Tier],
    next_index: int,
    *,
    closed_at: datetime,
    closing: str,
    now: datetime,
    acknowledged: bool,
    late_after: timedelta,
) -> Progress:
    """The tiers from ``next_index`` that fell due strictly before ``closed_at`` (the response
    or the cancellation, by its own time) and never fired, as the clock closes (``closing``:
    ``met`` or ``cancelled``). The breach and the escalations fire, marked late, telling nobody:
    they happened, and are counted; a reassignment is not carried out (the lead was answered or
    has moved on). A warning is passed over: a reminder for a lead no longer waiting helps
    nobody. Tiers due at or after ``closed_at`` never fall due."""
    fired: list[Firing] = []
    passed: list[PassedOver] = []
    for tier in _due(tiers, next_index, lambda due: due < closed_at):
        if tier.step == "warning":
            passed.append(PassedOver(tier, closing))
        elif acknowledged and tier.step != "breach" and not tier.reassign:
            passed.append(PassedOver(tier, "acknowledged"))
        else:
            fired.append(_firing(tier, (), now, late_after, reassign=False))
    return Progress(fired, passed, next_index + len(fired) + len(passed))


def _due(
    tiers: Sequence[Tier], next_index: int, fell_due: Callable[[datetime], bool]
) -> list[Tier]:
    """The tiers from ``next_index`` on, in order, while ``fell_due`` holds for their due time."""
    due = []
    for tier in tiers[next_index - 1 :]:
        if not fell_due(tier.due):
            break
        due.append(tier)
    return due


def _firing(
    tier: Tier, notify: tuple[str, ...], now: datetime, late_after: timedelta, *, reassign: bool
) -> Firing:
    late_by = max(now - tier.due, timedelta(0))
    return Firing(tier, notify, late_by, late_by > late_after, reassign)


def next_due(tiers: Sequence[Tier], next_index: int) -> datetime | None:
    return tiers[next_index - 1].due if next_index <= len(tiers) else None
