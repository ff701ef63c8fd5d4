"""Business calendars: deadlines and elapsed working time across weekends, public holidays, dated
exceptions, daylight-saving changes and time zones; the configuration's checks; properties."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import shared.calendars as calendars
from shared.business_hours import DAYS, Spans, WorkingHours, parse_hours, parse_spans
from shared.calendars import (
    BusinessCalendar,
    CalendarInvalid,
    CalendarSpec,
    PublicHolidays,
    deadline_for,
)


def calendar(
    time_zone: str,
    hours: str = "mon-fri 09:00-17:00",
    holidays: tuple[str, str | None] | None = None,
    exceptions: dict[date, str | None] | None = None,
) -> BusinessCalendar:
    """``exceptions``: a date's special hours, or None for closed."""
    return CalendarSpec.model_validate(
        {
            "time_zone": time_zone,
            "hours": hours,
            "holidays": holidays and {"country": holidays[0], "subdivision": holidays[1]},
            "exceptions": [
                {"date": day, "hours": text, "closed": text is None}
                for day, text in (exceptions or {}).items()
            ],
        }
    ).compile()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NEW_YORK = calendar("America/New_York", holidays=("US", None))
BERLIN = calendar("Europe/Berlin", holidays=("DE", "BE"))
BAVARIA = calendar("Europe/Berlin", holidays=("DE", "BY"))
TOKYO = calendar("Asia/Tokyo", holidays=("JP", None))
CHRISTMAS_EVE = date(2026, 12, 24)
NIGHT_SHIFT = calendar("Europe/Berlin", "sun 01:00-04:00")
SKIPPED_START = calendar("Europe/Berlin", "sun 02:30-04:00")  # 02:30 is skipped on 2026-03-29
BERLIN_24_7 = BusinessCalendar(WorkingHours.of("Europe/Berlin", {}), PublicHolidays.of("DE"))

DEADLINES = [
    # Weekend: an hour left on Friday (16:00 EST), the other on Monday.
    (NEW_YORK, "2026-11-20T21:00", 2, "2026-11-23T15:00"),
    # Out of hours, Friday 18:00 EST: nothing to do waits for Monday's opening; work starts then.
    (NEW_YORK, "2026-11-20T23:00", 0, "2026-11-23T14:00"),
    (NEW_YORK, "2026-11-20T23:00", 3, "2026-11-23T17:00"),
    # Open now with no work: now.
    (NEW_YORK, "2026-11-23T15:00", 0, "2026-11-23T15:00"),
    # Thanksgiving (Thursday 26th) is closed: Wednesday 16:00 + 4h → Friday 12:00 EST.
    (NEW_YORK, "2026-11-25T21:00", 4, "2026-11-27T17:00"),
    # Christmas (Fri 25th, Sat 26th in Germany): Thursday 16:00 CET + 2h → Monday 10:00.
    (BERLIN, "2026-12-24T15:00", 2, "2026-12-28T09:00"),
    # Epiphany is a holiday in Bavaria only: Monday 16:00 + 2h → Tuesday in Berlin, Wednesday there.
    (BERLIN, "2026-01-05T15:00", 2, "2026-01-06T09:00"),
    (BAVARIA, "2026-01-05T15:00", 2, "2026-01-07T09:00"),
    # Women's Day (8 March 2027, a Monday) is a holiday in Berlin only.
    (BERLIN, "2027-03-05T15:00", 2, "2027-03-09T09:00"),
    (BAVARIA, "2027-03-05T15:00", 2, "2027-03-08T09:00"),
    # New York across DST: Friday EST → Monday EDT; Friday EDT → Monday EST.
    (NEW_YORK, "2026-03-06T21:00", 2, "2026-03-09T14:00"),
    (NEW_YORK, "2026-10-30T20:00", 2, "2026-11-02T15:00"),
    # Berlin 01:00–04:00 on the spring-forward night is 2 real hours, on the fall-back night 4.
    (NIGHT_SHIFT, "2026-03-28T12:00", 2, "2026-03-29T02:00"),
    (NIGHT_SHIFT, "2026-03-28T12:00", 3, "2026-04-05T00:00"),  # next Sunday 01:00 CEST + 1h
    (NIGHT_SHIFT, "2026-10-24T12:00", 4, "2026-10-25T03:00"),
    (NIGHT_SHIFT, "2026-10-25T01:30", 1, "2026-10-25T02:30"),  # 02:30 CET, after the repeat
    # A start the clocks skip opens at the change (03:00 CEST), when the clock first reads later.
    (SKIPPED_START, "2026-03-28T12:00", 0, "2026-03-29T01:00"),
    (SKIPPED_START, "2026-03-28T12:00", 1, "2026-03-29T02:00"),
    # Owners in different zones, the same instant (Tue 15:00 UTC), 4 hours of work.
    (NEW_YORK, "2026-11-24T15:00", 4, "2026-11-24T19:00"),
    (BERLIN, "2026-11-24T15:00", 4, "2026-11-25T11:00"),
    (TOKYO, "2026-11-24T15:00", 4, "2026-11-25T04:00"),
    # Around the clock: real hours; across spring forward too; holidays still close.
    (BusinessCalendar.always_open(), "2026-11-20T23:00", 30, "2026-11-22T05:00"),
    (BusinessCalendar.always_open("Europe/Berlin"), "2026-03-28T12:00", 24, "2026-03-29T12:00"),
    (BERLIN_24_7, "2026-12-24T12:00", 24, "2026-12-27T12:00"),
]


@pytest.mark.parametrize(("cal", "start", "hours", "deadline"), DEADLINES)
def test_deadlines_count_working_time_only(
    cal: BusinessCalendar, start: str, hours: int, deadline: str
) -> None:
    assert deadline_for(utc(start), timedelta(hours=hours), cal) == utc(deadline)
    assert cal.between(utc(start), utc(deadline)) == timedelta(hours=hours)


EXCEPTIONS = {
    CHRISTMAS_EVE: None,
    date(2026, 12, 23): "09:00-12:00",
    date(2026, 12, 25): "10:00-12:00",  # open on Christmas Day although a holiday
}
SEASON = calendar("Europe/Berlin", holidays=("DE", "BE"), exceptions=EXCEPTIONS)


@pytest.mark.parametrize(
    ("start", "hours", "deadline"),
    [
        ("2026-12-22T15:00", 2, "2026-12-23T09:00"),  # Tue 16:00 + 2h → Wed 10:00 CET
        ("2026-12-23T10:00", 2, "2026-12-25T10:00"),  # 1h on the short day, 1h on Christmas Day
        ("2026-12-23T10:00", 4, "2026-12-28T09:00"),  # Christmas Day's 2 hours, then Monday
        ("2026-12-23T12:00", 0, "2026-12-25T09:00"),  # after the short day: the next opening
    ],
)
def test_dated_exceptions_close_or_replace_the_hours_and_win_over_holidays(
    start: str, hours: int, deadline: str
) -> None:
    assert SEASON.add(utc(start), timedelta(hours=hours)) == utc(deadline)


@pytest.mark.parametrize(
    ("cal", "instant", "open_"),
    [
        (NEW_YORK, "2026-11-26T15:00", False),  # Thanksgiving, 10:00 EST
        (NEW_YORK, "2026-11-27T15:00", True),
        (NEW_YORK, "2026-11-28T15:00", False),  # Saturday
        (SEASON, "2026-12-23T12:30", False),  # 13:30 CET on the short day
        (SEASON, "2026-12-25T10:30", True),  # the exception on Christmas Day
        (SEASON, "2026-12-24T10:00", False),
        (BERLIN_24_7, "2026-12-25T12:00", False),
        (BERLIN_24_7, "2026-12-24T22:59", True),
        (NIGHT_SHIFT, "2026-03-29T01:30", True),  # 03:30 CEST
        (NIGHT_SHIFT, "2026-03-29T02:00", False),  # 04:00 CEST
        (SKIPPED_START, "2026-03-29T01:15", True),  # 03:15 CEST, past the skipped 02:30
        (SKIPPED_START, "2026-03-29T00:59", False),  # 01:59 CET
    ],
)
def test_is_open(cal: BusinessCalendar, instant: str, open_: bool) -> None:
    assert cal.is_open(utc(instant)) is open_


def test_next_opening_is_now_when_open_else_the_next_span() -> None:
    friday_evening = utc("2026-11-20T23:00")
    assert NEW_YORK.next_open(friday_evening) == utc("2026-11-23T14:00")
    assert NEW_YORK.next_open(utc("2026-11-23T15:00")) == utc("2026-11-23T15:00")
    assert NEW_YORK.next_open(utc("2026-11-25T22:00")) == utc("2026-11-27T14:00")


def test_instants_in_any_offset_are_the_same_instant_and_results_are_utc() -> None:
    start = datetime.fromisoformat("2026-11-20T16:00:00-05:00")
    deadline = NEW_YORK.add(start, timedelta(hours=2))
    assert deadline == utc("2026-11-23T15:00") and deadline.tzinfo is UTC


@pytest.mark.parametrize(
    ("start", "end", "elapsed"),
    [
        ("2026-11-20T21:00", "2026-11-23T15:00", timedelta(hours=2)),
        ("2026-11-23T15:00", "2026-11-20T21:00", timedelta(0)),
        ("2026-11-23T15:00", "2026-11-23T15:00", timedelta(0)),
        ("2026-11-21T12:00", "2026-11-22T12:00", timedelta(0)),  # a weekend
        ("2026-11-23T00:00", "2026-11-30T00:00", timedelta(hours=32)),  # Thanksgiving week
    ],
)
def test_between_counts_working_time_only(start: str, end: str, elapsed: timedelta) -> None:
    assert NEW_YORK.between(utc(start), utc(end)) == elapsed


def test_a_deadline_weeks_away_costs_a_step_per_day(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = calendars.wall_instant

    def counted(*args: Any) -> datetime:
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(calendars, "wall_instant", counted)
    deadline = calendar("UTC").add(utc("2026-01-05T09:00"), timedelta(hours=8 * 20))
    assert deadline == utc("2026-01-30T17:00")
    assert calls <= 2 * 20  # two instants per working day; closed days cost none


def test_a_calendar_that_never_opens_is_refused() -> None:
    with pytest.raises(CalendarInvalid, match="no time of the week"):
        BusinessCalendar(WorkingHours.of("UTC", {"mon": []}))


def test_a_calendar_closed_for_years_says_so_instead_of_searching_forever() -> None:
    mondays = {date(2026, 1, 5) + timedelta(weeks=n): () for n in range(200)}
    closed = BusinessCalendar(WorkingHours.of("UTC", parse_hours("mon 09:00-10:00")), None, mondays)
    assert closed.next_open(utc("2026-01-01T00:00")) is None
    with pytest.raises(CalendarInvalid, match="no opening"):
        closed.add(utc("2026-01-01T00:00"), timedelta(hours=1))
    assert closed.between(utc("2026-01-01T00:00"), utc("2029-10-30T00:00")) == timedelta(0)


def test_naive_instants_and_negative_work_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        NEW_YORK.is_open(datetime(2026, 11, 20, 12))
    with pytest.raises(ValueError, match="negative"):
        NEW_YORK.add(utc("2026-11-20T12:00"), timedelta(hours=-1))


def test_text_and_dict_hours_compile_to_the_same_calendar() -> None:
    text = CalendarSpec(hours="mon-fri 09:00-17:00; sat 10:00-14:00").compile()
    table = {day: ["09:00-17:00"] for day in DAYS[:5]} | {"sat": ["10:00-14:00"]}
    assert CalendarSpec(hours=table).compile() == text


def test_always_compiles_to_a_calendar_open_around_the_clock() -> None:
    cal = CalendarSpec(always=True, time_zone="Asia/Tokyo").compile()
    assert cal == BusinessCalendar.always_open("Asia/Tokyo")
    assert cal.add(utc("2026-11-21T03:00"), timedelta(hours=50)) == utc("2026-11-23T05:00")


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"hours": "mon-fri 9-5"}, ("hours",), "'9-5' is not a span"),
        ({}, ("hours",), "no time of the week"),
        ({"hours": {"mon": []}}, ("hours",), "no time of the week"),
        ({"always": True, "hours": "mon 09:00-10:00"}, ("hours",), "must be empty"),
        ({"always": True, "time_zone": "Mars/Olympus"}, ("time_zone",), "'Mars/Olympus'"),
        ({"always": True, "holidays": {"country": "XX"}}, ("holidays", "country"), "'XX'"),
        (
            {"always": True, "holidays": {"country": "DE", "subdivision": "ZZ"}},
            ("holidays", "subdivision"),
            "'ZZ' is not a subdivision of DE.*BY",
        ),
        (
            {"always": True, "holidays": {"country": "SG", "subdivision": "X"}},
            ("holidays", "subdivision"),
            "SG has no subdivisions",
        ),
        (
            {"always": True, "exceptions": [{"date": "2026-12-24"}]},
            ("exceptions", 0),
            "2026-12-24 needs special hours or closed",
        ),
        (
            {"always": True, "exceptions": [{"date": "2026-12-24", "closed": True, "hours": "9"}]},
            ("exceptions", 0, "hours"),
            "'9' is not a span",
        ),
        (
            {
                "always": True,
                "exceptions": [{"date": "2026-12-24", "closed": True, "hours": "09:00-12:00"}],
            },
            ("exceptions", 0),
            "not both",
        ),
        (
            {"always": True, "exceptions": [{"date": "2026-12-24", "closed": True}] * 2},
            ("exceptions",),
            "2026-12-24 has more than one exception",
        ),
        ({"always": True, "weekends": False}, ("weekends",), "Extra inputs"),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(
    spec: dict[str, Any], field: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSpec.model_validate(spec)
    (error,) = caught.value.errors()
    assert error["loc"] == field
    assert re.search(message, error["msg"]), error["msg"]


def test_holiday_codes_are_normalised() -> None:
    spec = CalendarSpec.model_validate(
        {"hours": "mon-fri 09:00-17:00", "holidays": {"country": "de", "subdivision": "by"}}
    )
    assert spec.holidays is not None
    assert (spec.holidays.country, spec.holidays.subdivision) == ("DE", "BY")


# Properties, over random weekly hours in zones with DST changes of an hour, half an hour and
# at midnight, with holidays and dated exceptions.

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
QUARTERS = st.integers(0, 96).map(lambda q: q * 15)


@st.composite
def day_spans(draw: st.DrawFn) -> list[str]:
    ends = sorted(draw(st.lists(QUARTERS, min_size=0, max_size=4, unique=True)))
    pairs = zip(ends[::2], ends[1::2], strict=False)
    return [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in pairs]


@st.composite
def calendars_(draw: st.DrawFn) -> BusinessCalendar:
    time_zone = draw(st.sampled_from(ZONES))
    if draw(st.booleans()) and draw(st.booleans()):
        hours = WorkingHours.of(time_zone, {})
    else:
        week = {day: draw(day_spans()) for day in DAYS}
        week["wed"].append("09:00-17:00")  # some time every week, so deadlines stay weeks away
        hours = WorkingHours.of(time_zone, week)
    holidays = draw(st.sampled_from([None, PublicHolidays.of("DE", "BE"), PublicHolidays.of("US")]))
    days = st.dates(date(2025, 12, 1), date(2028, 1, 31))
    exceptions = draw(st.dictionaries(days, day_spans().map(special_or_closed), max_size=8))
    return BusinessCalendar(hours, holidays, exceptions)


def special_or_closed(texts: list[str]) -> Spans:
    return parse_spans(", ".join(texts)) if texts else ()


STARTS = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))
WORK = st.timedeltas(timedelta(0), timedelta(hours=120))
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(calendars_(), STARTS, WORK)
def test_between_undoes_add(cal: BusinessCalendar, start: datetime, work: timedelta) -> None:
    assert cal.between(start, cal.add(start, work)) == work


@FAST
@given(calendars_(), STARTS, WORK, WORK)
def test_add_is_monotone_in_the_work(
    cal: BusinessCalendar, start: datetime, a: timedelta, b: timedelta
) -> None:
    low, high = sorted((a, b))
    assert start <= cal.add(start, low) <= cal.add(start, high)


@FAST
@given(calendars_(), STARTS, WORK)
def test_a_deadline_is_open_or_ends_a_span(
    cal: BusinessCalendar, start: datetime, work: timedelta
) -> None:
    deadline = cal.add(start, work)
    just_before = deadline - timedelta(microseconds=1)
    assert cal.is_open(deadline) or (work and cal.is_open(just_before))
    assert cal.next_open(start) == cal.add(start, timedelta(0))


@FAST
@given(calendars_(), STARTS, st.timedeltas(timedelta(0), timedelta(days=20)), WORK)
def test_between_adds_up_over_consecutive_stretches(
    cal: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    middle, end = start + first, start + first + second
    assert cal.between(start, end) == cal.between(start, middle) + cal.between(middle, end)


@FAST
@given(calendars_(), STARTS)
def test_open_exactly_when_working_time_elapses(cal: BusinessCalendar, at: datetime) -> None:
    tick = timedelta(microseconds=1)
    assert cal.is_open(at) == (cal.between(at, at + tick) == tick)


AROUND_THE_CLOCK_ZONES = [*ZONES, "America/Sao_Paulo", "Asia/Kathmandu", "Pacific/Chatham"]
FAR_AWAY = date(1999, 1, 1)


@FAST
@given(st.sampled_from(AROUND_THE_CLOCK_ZONES), STARTS, WORK, WORK)
def test_a_calendar_open_around_the_clock_counts_elapsed_time_as_the_walk_does(
    time_zone: str, start: datetime, work: timedelta, more: timedelta
) -> None:
    """Open every minute (no hours, holidays or exceptions), working time is elapsed time,
    worked out without walking the days; the walk (forced by an exception on a day far outside
    the range, which changes nothing) gives the same instants, across DST changes included."""
    hours = WorkingHours.of(time_zone, {})
    plain = BusinessCalendar(hours)
    walked = BusinessCalendar(hours, exceptions={FAR_AWAY: ((0, 24 * 60),)})
    assert plain.add(start, work) == walked.add(start, work) == start + work
    end = start + work + more
    assert plain.between(start, end) == walked.between(start, end) == work + more
    assert plain.between(end, start) == walked.between(end, start) == timedelta(0)
