"""The goals marketing and sales agree on, as a co-signed YAML text (versions.py), and their
progress: each month's goal beside its actual, the gap, and for the month under way a run-rate
forecast. Pure.

```yaml
name: FY2027 targets
start: 2026-12                 # first of the next twelve months (NTM)
revenue:
  target: 12000000             # NTM bookings, in the currency the CRM reports
  expansion_share: 0.3         # the share expected from existing customers
deal_size: {smb: 8000, mid-market: 25000, enterprise: 90000, default: 20000}
monthly:                       # shared goals, each month of the twelve
  mqls: 400
  mql_to_sql: 0.35
  opportunities: 120
  bookings: 30
months:                        # a month's own goals, where they differ
  2027-01: {mqls: 300}
teams: {emea: {bookings: 10, opportunities: 40}}
owners: {ana@example.com: {bookings: 3}}
```

Marketing owns the bookings from its MQLs (the funnel's ``sourced_by``); both sides own the rest.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Metric = Literal["mqls", "mql_to_sql", "opportunities", "bookings", "bookings_amount"]
COUNTS: tuple[Metric, ...] = ("mqls", "opportunities", "bookings", "bookings_amount")
"""Metrics that add up over a month (a rate does not: it has no run rate)."""
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class GoalsInvalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Targets(_Spec):
    """Goals for one month: counts, a conversion rate (0…1), an amount."""

    mqls: int | None = Field(None, ge=0, description="MQLs generated in the month")
    mql_to_sql: float | None = Field(
        None, ge=0, le=1, description="Of the month's MQLs, the share that became SQLs"
    )
    opportunities: int | None = Field(None, ge=0, description="Opportunities opened")
    bookings: int | None = Field(None, ge=0, description="Bookings (booked or won)")
    bookings_amount: float | None = Field(None, ge=0, description="What they are worth")

    def given(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Revenue(_Spec):
    target: float = Field(gt=0, description="Bookings over the next twelve months (NTM)")
    expansion_share: float = Field(
        ge=0, le=1, description="The share expected from existing customers"
    )


class GoalsSpec(_Spec):
    name: str = Field("Goals", min_length=1, max_length=200)
    start: str = Field(description="The first of the twelve months, YYYY-MM")
    revenue: Revenue
    deal_size: dict[str, float] = Field(
        default_factory=dict,
        description="Average booking per segment (`default`: any other), for the planner",
    )
    monthly: Targets = Field(default_factory=Targets, description="Each month's shared goals")
    months: dict[str, Targets] = Field(default_factory=dict, description="A month's own goals")
    teams: dict[str, Targets] = Field(default_factory=dict, description="Team name → goals")
    owners: dict[str, Targets] = Field(default_factory=dict, description="Owner email → goals")

    @field_validator("start")
    @classmethod
    def _month(cls, value: str) -> str:
        if not MONTH.match(value):
            raise ValueError(f"{value!r} is no month (YYYY-MM)")
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, months: dict[str, Targets]) -> dict[str, Targets]:
        bad = [m for m in months if not MONTH.match(str(m))]
        if bad:
            raise ValueError(f"{bad[0]!r} is no month (YYYY-MM)")
        return months

    @field_validator("deal_size")
    @classmethod
    def _sizes(cls, sizes: dict[str, float]) -> dict[str, float]:
        if any(size <= 0 for size in sizes.values()):
            raise ValueError("deal sizes are above 0")
        return sizes

    @field_validator("owners")
    @classmethod
    def _emails(cls, owners: dict[str, Targets]) -> dict[str, Targets]:
        return {email.strip().lower(): goals for email, goals in owners.items()}


@dataclass(frozen=True)
class CompiledGoals:
    spec: GoalsSpec
    content_hash: str

    @property
    def months(self) -> list[str]:
        """The twelve months, YYYY-MM."""
        return [month_after(self.spec.start, i) for i in range(12)]

    def shared(self, month: str) -> dict[str, float]:
        """The month's shared goals (its own over the monthly ones; none outside the twelve),
        with the month's share of the NTM revenue target as its bookings amount unless set."""
        if month not in self.months:
            return {}
        goals = {"bookings_amount": self.spec.revenue.target / 12} | self.spec.monthly.given()
        return goals | (self.spec.months[month].given() if month in self.spec.months else {})

    def of_team(self, team: str, month: str) -> dict[str, float]:
        found = self.spec.teams.get(team)
        return found.given() if found is not None and month in self.months else {}

    def of_owner(self, email: str, month: str) -> dict[str, float]:
        found = self.spec.owners.get(email.lower())
        return found.given() if found is not None and month in self.months else {}


def compile_goals(text: str) -> CompiledGoals:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise GoalsInvalid([f"not YAML: {str(error).splitlines()[0]}"]) from None
    if not isinstance(raw, dict):
        raise GoalsInvalid(["the goals are a YAML mapping (name, start, revenue, monthly…)"])
    # YAML reads 2027-01 as a string but an unquoted key like 2027-01-01 as a date: say so.
    try:
        spec = GoalsSpec.model_validate(_keys_as_text(raw))
    except ValidationError as error:
        raise GoalsInvalid([_problem(e) for e in error.errors()]) from None
    return CompiledGoals(spec, hashlib.sha256(text.encode()).hexdigest())


def _keys_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _keys_as_text(v) for k, v in value.items()}
    return value


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "goals"
    return f"{where}: {error['msg']}"


def month_after(month: str, count: int) -> str:
    year, number = int(month[:4]), int(month[5:7]) - 1 + count
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def month_days(month: str) -> tuple[date, date]:
    """The month's first and last day."""
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


@dataclass(frozen=True, slots=True)
class Progress:
    metric: str
    goal: float | None
    actual: float
    gap: float | None
    """actual − goal (negative: short of it)."""
    forecast: float | None
    """For the month under way, a count at the run rate so far; else None."""


def progress(
    goals: dict[str, float], actuals: dict[str, float], month: str, today: date
) -> list[Progress]:
    """Each metric's goal and actual for ``month``; a count's run-rate forecast while the month
    is under way on ``today`` (the actual so far ÷ the days gone × the month's days)."""
    first, last = month_days(month)
    under_way = first <= today <= last
    found = []
    for metric, actual in actuals.items():
        goal = goals.get(metric)
        forecast = None
        if under_way and metric in COUNTS:
            gone = (today - first).days + 1
            forecast = actual / gone * last.day
        found.append(
            Progress(
                metric=metric,
                goal=goal,
                actual=actual,
                gap=actual - goal if goal is not None else None,
                forecast=forecast,
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Activity:
    """What a line did, as the actuals count it (store.activity reads them)."""

    team: str | None
    owner_email: str | None
    mql_at: Any
    sql_at: Any
    opportunity_at: Any
    booked_at: Any
    booking_amount: float | None
    sourced_by: str | None
    is_expansion: bool | None


Key = tuple[str, str | None, str | None]
"""(month, team, owner email): the month's totals have neither."""


def actuals(lines: list[Activity], month_of: Any) -> dict[Key, dict[str, float]]:
    """Per (month, team, owner) — and the totals per month under (month, None, None) — the
    month's MQLs (and the share of them that became SQLs, at any time since), opportunities,
    bookings and their amounts, marketing's bookings (from its MQLs) and the expansion amount.
    ``month_of`` maps a time to its YYYY-MM in the reporting calendar (None: outside the
    period)."""
    found: dict[Key, dict[str, float]] = {}

    def add(month: str | None, line: Activity, metric: str, value: float = 1.0) -> None:
        if month is None:
            return
        keys: list[Key] = [(month, None, None)]
        keys += [(month, line.team, None)] if line.team else []
        keys += [(month, None, line.owner_email)] if line.owner_email else []
        for key in keys:
            found.setdefault(key, dict.fromkeys(ZEROS, 0.0))[metric] += value

    for line in lines:
        mql_month = month_of(line.mql_at) if line.mql_at is not None else None
        add(mql_month, line, "mqls")
        if line.sql_at is not None:
            add(mql_month, line, "mqls_to_sql")
        if line.opportunity_at is not None:
            add(month_of(line.opportunity_at), line, "opportunities")
        if line.booked_at is not None:
            month = month_of(line.booked_at)
            amount = line.booking_amount or 0.0
            add(month, line, "bookings")
            add(month, line, "bookings_amount", amount)
            if line.sourced_by == "marketing":
                add(month, line, "marketing_bookings")
                add(month, line, "marketing_amount", amount)
            if line.is_expansion:
                add(month, line, "expansion_amount", amount)
    for totals in found.values():
        mqls = totals["mqls"]
        totals["mql_to_sql"] = totals.pop("mqls_to_sql") / mqls if mqls else 0.0
    return found


ZEROS = (
    "mqls", "mqls_to_sql", "opportunities", "bookings", "bookings_amount", "marketing_bookings",
    "marketing_amount", "expansion_amount",
)  # fmt: skip
