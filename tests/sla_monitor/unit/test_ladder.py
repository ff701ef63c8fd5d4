"""Escalation ladders: tiers planned on the calendar, fired once each, in order; an
acknowledgement stops the notify tiers, not the breach or a reassignment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.sla_monitor.ladder import Tier, fire_due, next_due, plan_ladder
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


def test_each_tier_fires_once_in_order() -> None:
    tiers = _plan()
    late = timedelta(seconds=5)
    fired, after = fire_due(tiers, 1, now=START + timedelta(minutes=31), acknowledged=False,
                            late_after=late)  # fmt: skip
    assert [f.tier.at for f in fired] == ["50%"] and after == 2
    fired, after = fire_due(tiers, after, now=START + timedelta(minutes=31), acknowledged=False,
                            late_after=late)  # fmt: skip
    assert fired == [] and after == 2
    assert next_due(tiers, after) == START + timedelta(minutes=48)


def test_a_monitor_that_was_down_fires_everything_due_marked_late() -> None:
    tiers = _plan()
    now = START + timedelta(hours=2)
    fired, after = fire_due(tiers, 1, now=now, acknowledged=False, late_after=timedelta(seconds=5))
    assert [f.tier.at for f in fired] == ["50%", "80%", "100%", "100% + 30m"]
    assert [f.late_by for f in fired] == [
        timedelta(minutes=90), timedelta(minutes=72), timedelta(hours=1), timedelta(minutes=30)
    ]  # fmt: skip
    assert all(f.late for f in fired)
    assert after == 5 and next_due(tiers, after) == START + timedelta(hours=3)
    on_time, _ = fire_due(tiers, 1, now=tiers[0].due + timedelta(seconds=1), acknowledged=False,
                          late_after=timedelta(seconds=5))  # fmt: skip
    assert not on_time[0].late


@pytest.mark.parametrize("acknowledged", [False, True])
def test_acknowledgement_stops_notify_tiers_not_breach_or_reassignment(acknowledged: bool) -> None:
    tiers = _plan()
    fired, after = fire_due(tiers, 1, now=START + timedelta(hours=5), acknowledged=acknowledged,
                            late_after=timedelta(0))  # fmt: skip
    steps = [(f.tier.at, f.notify) for f in fired]
    if acknowledged:
        assert steps == [("100%", ()), ("100% + 30m", ())]
    else:
        assert [s[0] for s in steps] == ["50%", "80%", "100%", "100% + 30m", "100% + 2h"]
        assert steps[2][1] == ("manager@example.com",)
    assert after == 6 and next_due(tiers, after) is None


def test_tiers_survive_their_json_form() -> None:
    tiers = _plan()
    assert tuple(Tier.from_json(t.to_json()) for t in tiers) == tiers
