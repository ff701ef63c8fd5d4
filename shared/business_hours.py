"""Weekly working hours in a local time zone: is it open now, and when does it open next.

Hours are kept per weekday as minute spans in local wall-clock time, so a rep who works 09:00–17:00
in New York works 09:00–17:00 on both sides of a daylight-saving change (13:00 UTC in winter,
12:00 UTC in summer). No hours at all means always working. Routing uses them per rep; business
calendars (``shared.calendars``) build deadline arithmetic on them. Pure: ``now`` is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
Spans = tuple[tuple[int, int], ...]


class HoursInvalid(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HoursInvalid(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"
        ) from None


def parse_hours(text: str) -> dict[str, list[str]]:
    """``"mon-fri 09:00-17:00; sat 10:00-14:00"`` → ``{"mon": ["09:00-17:00"], …}``."""
    hours: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        days, _, spans = part.partition(" ")
        for day in _day_range(days.lower()):
            hours.setdefault(day, []).extend(s.strip() for s in spans.split(",") if s.strip())
    validate_hours(hours)
    return hours


def parse_spans(text: str) -> Spans:
    """``"09:00-12:00, 13:00-17:00"`` (one day's spans) → ``((540, 720), (780, 1020))``."""
    spans = tuple(sorted(_span(s.strip()) for s in text.split(",") if s.strip()))
    if not spans:
        raise HoursInvalid(f"{text!r} holds no span; give one like 09:00-17:00")
    return spans


def _day_range(text: str) -> list[str]:
    first, _, last = text.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise HoursInvalid(f"{text!r}: days are mon…sun, or a range like mon-fri")
    start, end = DAYS.index(first), DAYS.index(last or first)
    if end < start:
        raise HoursInvalid(f"{text!r}: a day range runs forwards (mon-fri)")
    return list(DAYS[start : end + 1])


def validate_hours(hours: dict[str, list[str]]) -> dict[int, Spans]:
    spans: dict[int, Spans] = {}
    for day, texts in hours.items():
        if day not in DAYS:
            raise HoursInvalid(f"{day!r} is not a day (mon…sun)")
        spans[DAYS.index(day)] = tuple(sorted(_span(t) for t in texts))
    return spans


def _span(text: str) -> tuple[int, int]:
    match = _SPAN.match(text)
    if not match:
        raise HoursInvalid(f"{text!r} is not a span like 09:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not (0 <= start < end <= 24 * 60) or m1 > 59 or m2 > 59:
        raise HoursInvalid(f"{text!r}: a span starts before it ends, within one day")
    return start, end


def wall_instant(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """The first instant (UTC) at which the local clock reads ``minute`` of ``day`` or later.

    Monotone in the wall-clock time, so spans never turn negative: a time skipped by a
    spring-forward change is the instant of the change, a time repeated by a fall-back change is
    its first occurrence. Minute 1440 (24:00) is the next day's 00:00.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        return first
    low, high = 0, int((first - second).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        local = (second + timedelta(seconds=middle)).astimezone(zone).replace(tzinfo=None)
        low, high = (low, middle) if local >= wall else (middle, high)
    return second + timedelta(seconds=high)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    zone: ZoneInfo
    spans: dict[int, Spans]

    @classmethod
    def of(cls, time_zone: str, hours: dict[str, list[str]]) -> WorkingHours:
        return cls(zone(time_zone), validate_hours(hours))

    @property
    def always(self) -> bool:
        return not self.spans

    def local_day(self, now: datetime) -> str:
        return now.astimezone(self.zone).date().isoformat()

    def is_open(self, now: datetime) -> bool:
        if self.always:
            return True
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(s <= minute < e for s, e in self.spans.get(local.weekday(), ()))

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` if open, else the next start of a span (UTC); None when no span exists."""
        if self.is_open(now):
            return now
        local_date = now.astimezone(self.zone).date()
        for offset in range(8):
            day = local_date + timedelta(days=offset)
            for start, _ in self.spans.get(day.weekday(), ()):
                begins = self._instant(day, start)
                if begins > now:
                    return begins
        return None

    def _instant(self, day: date, minute: int) -> datetime:
        return wall_instant(self.zone, day, minute)
