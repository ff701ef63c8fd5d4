"""Weekly working hours: parsing, the local clock across DST, next openings, wall-clock instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.business_hours import (
    HoursInvalid,
    WorkingHours,
    parse_hours,
    parse_spans,
    wall_instant,
    zone,
)

NEW_YORK = WorkingHours.of("America/New_York", parse_hours("mon-fri 09:00-17:00"))
BERLIN = zone("Europe/Berlin")


@pytest.mark.parametrize(
    ("instant", "open_"),
    [
        ("2026-03-06T13:30:00+00:00", False),  # Friday, EST: 08:30 local
        ("2026-03-06T14:30:00+00:00", True),  # 09:30 EST
        ("2026-03-09T13:30:00+00:00", True),  # Monday after the change, EDT: 09:30 local
        ("2026-03-09T21:30:00+00:00", False),  # 17:30 EDT
        ("2026-11-02T13:30:00+00:00", False),  # Monday after fall back, EST: 08:30
        ("2026-10-30T13:30:00+00:00", True),  # Friday before, EDT: 09:30
    ],
)
def test_working_hours_follow_the_local_clock_across_dst(instant: str, open_: bool) -> None:
    assert NEW_YORK.is_open(datetime.fromisoformat(instant)) is open_


def test_next_opening_across_a_dst_change_is_the_local_start() -> None:
    friday_evening = datetime(2026, 3, 6, 23, 0, tzinfo=UTC)  # 18:00 EST Friday
    assert NEW_YORK.next_open(friday_evening) == datetime(
        2026, 3, 9, 13, 0, tzinfo=UTC
    )  # 09:00 EDT
    berlin = WorkingHours.of("Europe/Berlin", parse_hours("sun 02:30-04:00"))
    # 02:30 does not exist on 2026-03-29 in Berlin (clocks jump 02:00 → 03:00): the span opens
    # at the change, 03:00 summer time, when ``is_open`` (local 03:00 is inside it) says so too,
    # as a business calendar counts it (shared/calendars.py).
    skipped = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert berlin.next_open(datetime(2026, 3, 28, tzinfo=UTC)) == skipped
    assert berlin.is_open(skipped) and not berlin.is_open(skipped - timedelta(seconds=1))


def test_no_hours_means_always_working() -> None:
    always = WorkingHours.of("Asia/Tokyo", {})
    now = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert always.always and always.is_open(now) and always.next_open(now) == now
    assert always.local_day(now) == "2026-11-28"


def test_bad_hours_are_refused() -> None:
    for text in ("mon 17:00-09:00", "fri-mon 09:00-10:00", "mon 9-5", "xyz 09:00-10:00"):
        with pytest.raises(HoursInvalid):
            parse_hours(text)


def test_hours_parse_per_day_and_ranges() -> None:
    assert parse_hours("mon-wed 09:00-12:00, 13:00-17:00; sat 10:00-14:00") == {
        "mon": ["09:00-12:00", "13:00-17:00"],
        "tue": ["09:00-12:00", "13:00-17:00"],
        "wed": ["09:00-12:00", "13:00-17:00"],
        "sat": ["10:00-14:00"],
    }


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("10:00-14:00", ((600, 840),)),
        ("13:00-17:00, 09:00-12:00", ((540, 720), (780, 1020))),
        ("00:00-24:00", ((0, 1440),)),
    ],
)
def test_one_days_spans_parse_sorted(text: str, spans: tuple[tuple[int, int], ...]) -> None:
    assert parse_spans(text) == spans


@pytest.mark.parametrize("text", ["", " , ", "14:00-10:00", "10-14", "09:00-25:00"])
def test_bad_spans_are_refused(text: str) -> None:
    with pytest.raises(HoursInvalid):
        parse_spans(text)


def test_an_unknown_time_zone_is_refused_with_an_example() -> None:
    with pytest.raises(HoursInvalid, match="Europe/Berlin"):
        zone("Mars/Olympus")


@pytest.mark.parametrize(
    ("day", "minute", "instant"),
    [
        (date(2026, 1, 5), 9 * 60, datetime(2026, 1, 5, 8, 0, tzinfo=UTC)),
        (date(2026, 1, 5), 24 * 60, datetime(2026, 1, 5, 23, 0, tzinfo=UTC)),  # next 00:00
        # Spring forward 02:00 → 03:00: every skipped time is the change itself.
        (date(2026, 3, 29), 2 * 60, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (date(2026, 3, 29), 2 * 60 + 30, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (date(2026, 3, 29), 3 * 60, datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Fall back 03:00 → 02:00: a repeated time is its first occurrence (summer time).
        (date(2026, 10, 25), 2 * 60 + 30, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (date(2026, 10, 25), 3 * 60, datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
    ],
)
def test_wall_instants_are_the_first_moment_the_clock_reads_them(
    day: date, minute: int, instant: datetime
) -> None:
    assert wall_instant(BERLIN, day, minute) == instant
