"""Business calendars: weekly hours, public holidays and dated exceptions, and deadlines on them.

A calendar is open on a local date during that date's spans: a dated exception's (a closed day
has none), else none on a public holiday, else the weekly hours' (no weekly hours at all: the
whole day). Each span runs from the first instant the local clock reads its start to the first
it reads its end, so a span across a daylight-saving change counts the real time elapsed:
01:00–04:00 on a spring-forward night is two hours of work, on a fall-back night four.
Arithmetic walks those spans day by day, so a deadline days away costs a step per day. Pure:
instants are passed in, timezone-aware; results are UTC. ``CalendarSpec`` is the configuration.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from holidays import country_holidays, list_supported_countries
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.business_hours import (
    HoursInvalid,
    Spans,
    WorkingHours,
    parse_hours,
    parse_spans,
    validate_hours,
    wall_instant,
    zone,
)

HORIZON_DAYS = 2 * 366
_WHOLE_DAY: Spans = ((0, 24 * 60),)
Span = tuple[datetime, datetime]


class CalendarInvalid(HoursInvalid):
    pass


@lru_cache(maxsize=1024)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True, slots=True)
class PublicHolidays:
    """The public holidays (observed days included) of a country, or of one of its subdivisions."""

    country: str
    subdivision: str | None = None

    @classmethod
    def of(cls, country: str, subdivision: str | None = None) -> PublicHolidays:
        country = supported_country(country)
        if subdivision is not None:
            subdivision = supported_subdivision(country, subdivision)
        return cls(country, subdivision)

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, date):
            return False
        return day in _holiday_dates(self.country, self.subdivision, day.year)


def supported_country(country: str) -> str:
    """The country's code as the holidays package knows it; CalendarInvalid if it knows none."""
    code = country.strip().upper()
    if code not in list_supported_countries():
        raise CalendarInvalid(
            f"{country!r} is not a country with known public holidays; "
            "use an ISO 3166-1 code like DE or US"
        )
    return code


def supported_subdivision(country: str, subdivision: str) -> str:
    known = list_supported_countries()[supported_country(country)]
    if not known:
        raise CalendarInvalid(
            f"{country.upper()} has no subdivisions with holidays of their own; "
            f"leave out subdivision {subdivision!r}"
        )
    by_upper = {s.upper(): s for s in known}
    if subdivision.strip().upper() not in by_upper:
        raise CalendarInvalid(
            f"{subdivision!r} is not a subdivision of {country.upper()} with known public "
            f"holidays; choose from {', '.join(known)}"
        )
    return by_upper[subdivision.strip().upper()]


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When a business works: ``hours`` (their zone is the calendar's), ``holidays`` closed,
    ``exceptions`` by local date (no spans: closed) replacing both that day."""

    hours: WorkingHours
    holidays: PublicHolidays | None = None
    exceptions: Mapping[date, Spans] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.hours.always and not any(self.hours.spans.values()):
            raise CalendarInvalid(
                "the weekly hours open at no time of the week; give hours like "
                "mon-fri 09:00-17:00, or make the calendar open around the clock"
            )

    @classmethod
    def always_open(cls, time_zone: str = "UTC") -> BusinessCalendar:
        return cls(WorkingHours.of(time_zone, {}))

    def is_open(self, at: datetime) -> bool:
        at = _utc(at)
        return any(b <= at < e for b, e in self.day_spans(at.astimezone(self.hours.zone).date()))

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` if open, else the next opening; None if none comes within HORIZON_DAYS."""
        return next((begin for begin, _ in self._spans_from(_utc(at))), None)

    def add(self, start: datetime, work: timedelta) -> datetime:
        """The instant ``work`` of working time has elapsed counting from ``start`` (or from the
        next opening if closed then); with no work, the next opening at or after ``start``."""
        if work < timedelta(0):
            raise ValueError(f"working time must not be negative, got {work}")
        if self._around_the_clock:
            return _utc(start) + work
        left = work
        for begin, end in self._spans_from(_utc(start)):
            if left <= end - begin:
                return begin + left
            left -= end - begin
        raise CalendarInvalid(
            f"the calendar has no opening for {HORIZON_DAYS} days in a row after {start}"
        )

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time elapsed from ``start`` to ``end`` (nothing if ``end`` is not later)."""
        start, end = _utc(start), _utc(end)
        if self._around_the_clock:
            return max(end - start, timedelta(0))
        total = timedelta(0)
        for begin, finish in self._spans_from(start, until=end):
            if begin >= end:
                break
            total += min(finish, end) - begin
        return total

    @property
    def _around_the_clock(self) -> bool:
        """Open every minute of every day (no weekly hours, holidays or exceptions): working
        time is elapsed time, whatever the zone, and needs no walk through its days (the SLA
        monitor's default calendar; the walk was a fifth of planning a clock)."""
        return self.hours.always and self.holidays is None and not self.exceptions

    def day_spans(self, day: date) -> list[Span]:
        """The working spans of a local date as UTC instants, in order, overlaps joined."""
        spans: list[Span] = []
        local = self.hours.zone
        for start, end in sorted(self._local_spans(day)):
            begin, finish = wall_instant(local, day, start), wall_instant(local, day, end)
            if spans and begin <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(spans[-1][1], finish))
            elif begin < finish:
                spans.append((begin, finish))
        return spans

    def _local_spans(self, day: date) -> Spans:
        if day in self.exceptions:
            return self.exceptions[day]
        if self.holidays is not None and day in self.holidays:
            return ()
        if self.hours.always:
            return _WHOLE_DAY
        return self.hours.spans.get(day.weekday(), ())

    def _spans_from(self, at: datetime, until: datetime | None = None) -> Iterator[Span]:
        """The spans ending after ``at`` in order, the first starting at ``at`` at the earliest:
        through ``until``'s local date, or while no HORIZON_DAYS pass without one."""
        day = at.astimezone(self.hours.zone).date()
        last = until.astimezone(self.hours.zone).date() if until else None
        idle = 0
        while (day <= last) if last is not None else (idle <= HORIZON_DAYS):
            spans = [(max(begin, at), end) for begin, end in self.day_spans(day) if end > at]
            idle = 0 if spans else idle + 1
            yield from spans
            day += timedelta(days=1)


def deadline_for(started: datetime, within: timedelta, calendar: BusinessCalendar) -> datetime:
    """When a clock started at ``started`` with ``within`` of working time runs out."""
    return calendar.add(started, within)


def _utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise ValueError(f"{at} has no time zone; pass timezone-aware instants")
    return at.astimezone(UTC)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HolidaysSpec(_Spec):
    country: str = Field(description="ISO 3166-1 code whose public holidays close, e.g. DE")
    subdivision: str | None = Field(
        None, description="Its state or region, e.g. BY; none: nationwide holidays only"
    )

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return supported_country(value)

    @field_validator("subdivision")
    @classmethod
    def _subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        if value is None or country is None:
            return value
        return supported_subdivision(country, value)


class ExceptionSpec(_Spec):
    date: dt.date = Field(description="The local date it applies to")
    hours: str | None = Field(None, description='Special hours that day: "10:00-14:00, …"')
    closed: bool = Field(False, description="Closed all day")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_spans(value)
        return value

    @model_validator(mode="after")
    def _either(self) -> ExceptionSpec:
        if self.closed == (self.hours is not None):
            raise ValueError(
                f"the exception on {self.date} is either closed or has hours, not both"
                if self.closed
                else f"the exception on {self.date} needs special hours or closed: true"
            )
        return self

    def spans(self) -> Spans:
        return parse_spans(self.hours) if self.hours is not None else ()


class CalendarSpec(_Spec):
    time_zone: str = Field("UTC", description="IANA zone the hours and dates are local to")
    always: bool = Field(False, description="Open around the clock; hours stay empty")
    hours: str | dict[str, list[str]] = Field(
        default_factory=dict,
        validate_default=True,
        description='"mon-fri 09:00-17:00; sat 10:00-14:00" or {"mon": ["09:00-17:00"], …}',
    )
    holidays: HolidaysSpec | None = Field(None, description="Public holidays, closed")
    exceptions: list[ExceptionSpec] = Field(
        default_factory=list, description="Dated closures or special hours; they win on holidays"
    )

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(
        cls, value: str | dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        hours = parse_hours(value) if isinstance(value, str) else value
        opens = any(validate_hours(hours).values())
        always = info.data.get("always")
        if always and opens:
            raise ValueError("hours must be empty when always is true (open around the clock)")
        if always is False and not opens:
            raise ValueError(
                "hours open at no time of the week; give hours like mon-fri 09:00-17:00, "
                "or always: true for a calendar open around the clock"
            )
        return hours

    @field_validator("exceptions")
    @classmethod
    def _one_per_date(cls, value: list[ExceptionSpec]) -> list[ExceptionSpec]:
        seen: set[date] = set()
        for exception in value:
            if exception.date in seen:
                raise ValueError(f"{exception.date} has more than one exception; keep one")
            seen.add(exception.date)
        return value

    def _weekly(self) -> dict[str, list[str]]:
        return parse_hours(self.hours) if isinstance(self.hours, str) else self.hours

    def compile(self) -> BusinessCalendar:
        holidays = self.holidays
        return BusinessCalendar(
            WorkingHours.of(self.time_zone, {} if self.always else self._weekly()),
            PublicHolidays.of(holidays.country, holidays.subdivision) if holidays else None,
            {e.date: e.spans() for e in self.exceptions},
        )
