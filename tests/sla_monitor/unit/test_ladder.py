"""Escalation ladders: tiers planned on the calendar, fired once each, in order; an
acknowledgement stops the notify tiers, not the breach or a reassignment; a clock closed before
the sweep fired what fell due settles it (breach and escalations fire, warnings are passed over)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.sla_monitor.ladder import Progress, Tier, fire_due, next_due, plan_ladder, settle
from services.sla_monitor.policy import TargetSpec, TierSpec
from shared.calendars import BusinessCalendar, CalendarSpec

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
ALWAYS = BusinessCalendar.always_open()
LADDER = TargetSpec(
    within="1h",
    ladder=[
        TierSpec(at="100% + 30m", reassign=True),
        TierSpec(at="50%", notify=["owner"]),
        TierSpec(at="100%", notify=["manager"]),
        TierSpec(at="100% + 2h", notify=["head"]),
        TierSpec(at="80%", notify=["owner"]),
    ],
)


def _who(names: list[str]) -> list[str]:
    return [f"{n}@example.com" for n in names]


def _plan(target: TargetSpec = LADDER, calendar: BusinessCalendar = ALWAYS) -> tuple[Tier, ...]:
    return plan_ladder(target, started=START, calendar=calendar, recipients=_who)[1]


def test_tiers_in_due_order_with_the_breach_at_the_deadline() -> None:
    tiers = _plan()
    assert [(t.index, t.at, t.step) for t in tiers] == [
        (1, "50%", "warning"),
        (2, "80%", "warning"),
        (3, "100%", "breach"),
        (4, "100% + 30m", "escalate"),
        (5, "100% + 2h", "escalate"),
    ]
    assert [t.due - START for t in tiers] == [
        timedelta(minutes=30), timedelta(minutes=48), timedelta(hours=1),
        timedelta(minutes=90), timedelta(hours=3),
    ]  # fmt: skip
    assert tiers[2].notify == ("manager@example.com",)
    assert tiers[3].reassign and not tiers[3].notify


def test_a_ladder_without_tiers_still_breaches() -> None:
    deadline, tiers = plan_ladder(
        TargetSpec(within="4h"), started=START, calendar=ALWAYS, recipients=_who
    )
    assert deadline == START + timedelta(hours=4)
    assert [(t.step, t.due) for t in tiers] == [("breach", deadline)]


def test_tiers_count_working_time() -> None:
    office = CalendarSpec(time_zone="UTC", hours="mon-fri 09:00-10:00").compile()
    tiers = _plan(calendar=office)
    assert tiers[2].due == START + timedelta(hours=1)  # the breach: Monday 10:00
    assert tiers[3].due == START + timedelta(days=1, minutes=30)  # Tuesday 09:30
    assert tiers[4].due == START + timedelta(days=2, hours=1)  # 3 h of work: Wednesday 10:00


def _fire(
    tiers: tuple[Tier, ...],
    after: int,
    now: datetime,
    *,
    acknowledged: bool = False,
    late_after: timedelta = timedelta(seconds=5),
) -> Progress:
    return fire_due(tiers, after, now=now, acknowledged=acknowledged, late_after=late_after)


def test_each_tier_fires_once_in_order() -> None:
    tiers = _plan()
    first = _fire(tiers, 1, START + timedelta(minutes=31))
    assert [f.tier.at for f in first.fired] == ["50%"] and first.next_index == 2
    again = _fire(tiers, first.next_index, START + timedelta(minutes=31))
    assert (again.fired, again.passed, again.next_index) == ([], [], 2)
    assert next_due(tiers, again.next_index) == START + timedelta(minutes=48)


def test_a_monitor_that_was_down_fires_everything_due_marked_late() -> None:
    tiers = _plan()
    progress = _fire(tiers, 1, START + timedelta(hours=2))
    fired = progress.fired
    assert [f.tier.at for f in fired] == ["50%", "80%", "100%", "100% + 30m"]
    assert [f.late_by for f in fired] == [
        timedelta(minutes=90), timedelta(minutes=72), timedelta(hours=1), timedelta(minutes=30)
    ]  # fmt: skip
    assert all(f.late for f in fired) and fired[3].reassign
    assert progress.next_index == 5 and next_due(tiers, 5) == START + timedelta(hours=3)
    on_time = _fire(tiers, 1, tiers[0].due + timedelta(seconds=1))
    assert not on_time.fired[0].late


@pytest.mark.parametrize("acknowledged", [False, True])
def test_acknowledgement_stops_notify_tiers_not_breach_or_reassignment(acknowledged: bool) -> None:
    tiers = _plan()
    progress = _fire(tiers, 1, START + timedelta(hours=5), acknowledged=acknowledged,
                     late_after=timedelta(0))  # fmt: skip
    steps = [(f.tier.at, f.notify) for f in progress.fired]
    passed = [(p.tier.at, p.reason) for p in progress.passed]
    if acknowledged:
        assert steps == [("100%", ()), ("100% + 30m", ())]
        assert passed == [("50%", "acknowledged"), ("80%", "acknowledged"),
                          ("100% + 2h", "acknowledged")]  # fmt: skip
    else:
        assert [s[0] for s in steps] == ["50%", "80%", "100%", "100% + 30m", "100% + 2h"]
        assert steps[2][1] == ("manager@example.com",) and passed == []
    assert progress.next_index == 6 and next_due(tiers, 6) is None


def _settle(closed_after: timedelta, *, after: int = 1, acknowledged: bool = False) -> Progress:
    return settle(_plan(), after, closed_at=START + closed_after, closing="met",
                  now=START + timedelta(hours=6), acknowledged=acknowledged,
                  late_after=timedelta(seconds=5))  # fmt: skip


@pytest.mark.parametrize(
    ("closed_after", "fired", "passed", "next_index"),
    [
        (timedelta(minutes=20), [], [], 1),  # before any tier: nothing falls due
        (timedelta(minutes=30), [], [], 1),  # at a tier's due time: in time, it never fell due
        (timedelta(minutes=50), [], ["50%", "80%"], 3),
        (timedelta(hours=1), [], ["50%", "80%"], 3),  # at the deadline: met in time
        (timedelta(minutes=61), ["100%"], ["50%", "80%"], 4),
        (timedelta(hours=4), ["100%", "100% + 30m", "100% + 2h"], ["50%", "80%"], 6),
    ],
)
def test_a_closed_clock_settles_what_fell_due_before_it_closed(
    closed_after: timedelta, fired: list[str], passed: list[str], next_index: int
) -> None:
    progress = _settle(closed_after)
    assert [f.tier.at for f in progress.fired] == fired
    assert [p.tier.at for p in progress.passed] == passed
    assert all(p.reason == "met" for p in progress.passed)
    assert progress.next_index == next_index
    # fired late, telling nobody, moving nobody
    assert all(f.late and f.notify == () and not f.reassign for f in progress.fired)
    if fired:
        assert progress.fired[0].late_by == timedelta(hours=5)  # due at 1 h, settled at 6 h


def test_settling_takes_only_the_tiers_the_sweep_had_not_fired() -> None:
    progress = _settle(timedelta(hours=4), after=4)  # the sweep fired up to the breach
    assert [f.tier.at for f in progress.fired] == ["100% + 30m", "100% + 2h"]
    assert progress.passed == []
    acknowledged = _settle(timedelta(hours=4), after=4, acknowledged=True)
    assert [f.tier.at for f in acknowledged.fired] == ["100% + 30m"]
    assert [(p.tier.at, p.reason) for p in acknowledged.passed] == [("100% + 2h", "acknowledged")]


def test_tiers_survive_their_json_form() -> None:
    tiers = _plan()
    assert tuple(Tier.from_json(t.to_json()) for t in tiers) == tiers
