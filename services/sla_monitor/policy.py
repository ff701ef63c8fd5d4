"""SLA policies as both sides sign them: a YAML text, parsed and checked here. Pure: no I/O.

```yaml
name: Speed to lead
calendars:                      # business calendars by name (shared/calendars.py)
  emea: {time_zone: Europe/Berlin, hours: "mon-fri 09:00-17:00", holidays: {country: DE}}
calendar: emea                  # the default; a team's, then an owner's, override it
teams: {inbound-emea: emea}
owners: {ana@example.com: emea}
contacts:                       # who a tier may notify besides ``owner``
  manager: [sales-lead@example.com]
  head_of_sales: [cro@example.com]
team_contacts: {inbound-emea: {manager: [emea-lead@example.com]}}
policies:                       # the first whose ``when`` holds applies
  - id: hot
    when: 'lead.grade == "A"'
    first_response:
      within: 15m               # working time: h, m, s
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 30m, reassign: true}
    acceptance: {within: 4h}
```
Targets: ``pickup`` (a lead waiting in a queue), ``first_response``, ``acceptance`` (an MQL accepted
or rejected), ``follow_up`` (the next touch after the first); ``responses`` lists what counts.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import cel
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.calendars import BusinessCalendar, CalendarSpec
from shared.conditions import condition_problem
from shared.events import CLOCK_KINDS, ClockKind

OUTCOMES = frozenset({"responded", "accepted", "rejected", "opportunity", "booked", "won", "lost"})
TOUCHES = ("responded", "accepted", "rejected", "opportunity", "booked", "call", "email", "meeting")
DEFAULT_RESPONSES: dict[ClockKind, tuple[str, ...]] = {
    "pickup": (),
    "first_response": TOUCHES,
    "acceptance": ("accepted", "rejected"),
    "follow_up": TOUCHES,
}
ALWAYS = "always"
_DURATION = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")
_AT = re.compile(r"^(?:(\d+(?:\.\d+)?)%|breach)(?:\s*([+-])\s*(\S+))?$")
_NAME = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
_FORM_FIELDS = re.compile(r"\b(segment|employees|country)\b")


class PolicyInvalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@lru_cache(maxsize=1024)
def parse_duration(text: str) -> timedelta:
    """``15m``, ``4h``, ``1h30m``, ``90s``: working time (days are refused: say hours)."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 15m, 4h or 1h30m (working time)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


@lru_cache(maxsize=1024)
def tier_offset(at: str, target: timedelta) -> timedelta:
    """When a tier falls due, in working time from the clock's start: ``80%`` of the target,
    ``100% + 30m`` (``breach + 30m``) after it."""
    match = _AT.match(at.strip())
    if not match:
        raise ValueError(f"{at!r} is not a tier offset like 50%, 100% or 100% + 30m")
    percent, sign, extra = match.groups()
    offset = target * (float(percent) / 100 if percent else 1.0)
    if extra:
        offset += parse_duration(extra) * (1 if sign == "+" else -1)
    if offset < timedelta(0):
        raise ValueError(f"{at!r} falls before the clock starts")
    return timedelta(seconds=round(offset.total_seconds()))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierSpec(_Spec):
    at: str = Field(description="50%, 100%, 100% + 30m (working time from the clock's start)")
    notify: list[str] = Field(default_factory=list, description="owner, a contact group, or emails")
    reassign: bool = Field(False, description="Move the lead to another owner (at or after 100%)")

    @model_validator(mode="after")
    def _does_something(self) -> TierSpec:
        if not self.notify and not self.reassign:
            raise ValueError(f"tier at {self.at!r} neither notifies nor reassigns")
        tier_offset(self.at, timedelta(hours=1))
        if self.reassign and tier_offset(self.at, timedelta(hours=1)) < timedelta(hours=1):
            raise ValueError(f"tier at {self.at!r}: a reassignment comes at or after the deadline")
        return self


class TargetSpec(_Spec):
    within: str = Field(description="The target: working time from the clock's start")
    responses: list[str] | None = Field(
        None, description="Outcomes and activity kinds that meet it (default per target)"
    )
    ladder: list[TierSpec] = Field(default_factory=list, max_length=20)

    @field_validator("within")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def target(self) -> timedelta:
        return parse_duration(self.within)


class PolicySpec(_Spec):
    id: str = Field(pattern=_NAME)
    when: str = Field("true", description="CEL over `lead`; the first policy that holds applies")
    calendar: str | None = Field(None, description="Overrides the team's and owner's calendar")
    pickup: TargetSpec | None = None
    first_response: TargetSpec | None = None
    acceptance: TargetSpec | None = None
    follow_up: TargetSpec | None = None

    def target(self, kind: ClockKind) -> TargetSpec | None:
        found: TargetSpec | None = getattr(self, kind)
        return found


class SlaSpec(_Spec):
    name: str = Field("SLA policies", min_length=1, max_length=200)
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    calendar: str = Field(ALWAYS, description="The default calendar (`always`: 24/7)")
    teams: dict[str, str] = Field(default_factory=dict, description="Team name → calendar")
    owners: dict[str, str] = Field(default_factory=dict, description="Owner email → calendar")
    contacts: dict[str, list[str]] = Field(default_factory=dict)
    team_contacts: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    policies: list[PolicySpec] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> SlaSpec:
        problems = [*self._unknown_calendars(), *self._unknown_contacts()]
        ids = [p.id for p in self.policies]
        problems += [f"policy id {i!r} is used twice" for i in sorted(set(ids)) if ids.count(i) > 1]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _unknown_calendars(self) -> list[str]:
        known = {ALWAYS, *self.calendars}
        named = [("calendar", self.calendar)]
        named += [(f"teams.{t}", c) for t, c in self.teams.items()]
        named += [(f"owners.{o}", c) for o, c in self.owners.items()]
        named += [(f"policy {p.id}", p.calendar) for p in self.policies if p.calendar]
        return [f"{where}: no calendar named {c!r}" for where, c in named if c not in known]

    def _unknown_contacts(self) -> list[str]:
        groups = {"owner", *self.contacts}
        for per_team in self.team_contacts.values():
            groups.update(per_team)
        found = []
        for policy in self.policies:
            for kind in CLOCK_KINDS:
                target = policy.target(kind)
                for tier in target.ladder if target else ():
                    found += [
                        f"policy {policy.id} {kind} at {tier.at!r}: no contact group {name!r}"
                        for name in tier.notify
                        if "@" not in name and name not in groups
                    ]
        return found


@dataclass(eq=False)
class CompiledPolicies:
    spec: SlaSpec
    content_hash: str
    calendars: dict[str, BusinessCalendar]
    program: Any
    reads_forms: bool = True
    """A condition reads what only the forms say (``segment``, ``employees``): the leads'
    submissions must be loaded to choose a policy."""

    @property
    def responses(self) -> frozenset[str]:
        """Every outcome and activity kind that some target of some policy counts."""
        return frozenset(
            response
            for policy in self.spec.policies
            for kind in CLOCK_KINDS
            if (target := policy.target(kind)) is not None
            for response in (target.responses or DEFAULT_RESPONSES[kind])
        )

    def choose(self, lead: dict[str, Any]) -> PolicySpec | None:
        """The first policy whose condition holds for ``lead`` (facts.sla_facts)."""
        values = self.program.execute({"lead": lead})
        return next((p for p, v in zip(self.spec.policies, values, strict=True) if v), None)

    def calendar_for(
        self, policy: PolicySpec, *, team: str | None, owner_email: str | None
    ) -> tuple[str, BusinessCalendar]:
        """The policy's own calendar, else the owner's, else the team's, else the default."""
        name = (
            policy.calendar
            or self.spec.owners.get((owner_email or "").lower())
            or self.spec.teams.get(team or "")
            or self.spec.calendar
        )
        return name, self.calendars[name]

    def recipients(
        self, names: list[str], *, owner_email: str | None, team: str | None
    ) -> list[str]:
        """A tier's ``notify`` as addresses: the owner, contact groups (a team's own first)."""
        found: list[str] = []
        for name in names:
            if name == "owner":
                found += [owner_email] if owner_email else []
            elif "@" in name:
                found.append(name)
            else:
                per_team = self.spec.team_contacts.get(team or "", {})
                found += per_team.get(name, self.spec.contacts.get(name, []))
        return list(dict.fromkeys(found))


SAMPLE_FACTS: dict[str, Any] = {
    "stage": "mql",
    "grade": "A",
    "score": 80,
    "engagement": 30,
    "source": "web",
    "country": "DE",
    "segment": "enterprise",
    "employees": 500,
    "team": "inbound",
    "is_expansion": False,
    "is_test": False,
}


def compile_policies(text: str) -> CompiledPolicies:
    """Parse, validate and type-check every condition; raise naming every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PolicyInvalid([f"not YAML: {error}"]) from None
    try:
        spec = SlaSpec.model_validate(document)
    except ValidationError as error:
        raise PolicyInvalid([_problem(e) for e in error.errors()]) from None
    problems = [p for policy in spec.policies if (p := _check(policy)) is not None]
    if problems:
        raise PolicyInvalid(problems)
    try:
        calendars = {name: c.compile() for name, c in spec.calendars.items()}
    except ValueError as error:
        raise PolicyInvalid([f"calendars: {error}"]) from None
    calendars.setdefault(ALWAYS, BusinessCalendar.always_open())
    program = cel.compile("[" + ", ".join(f"({p.when})" for p in spec.policies) + "]")
    digest = hashlib.sha256(text.encode()).hexdigest()
    forms = any(_FORM_FIELDS.search(p.when) for p in spec.policies)
    return CompiledPolicies(spec, digest, calendars, program, reads_forms=forms)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(file)"
    return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"


def _check(policy: PolicySpec) -> str | None:
    problem = condition_problem(policy.when, (SAMPLE_FACTS,))
    return f"policy {policy.id}: {problem}" if problem else None
