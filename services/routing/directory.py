"""The owner directory as the router sees it: immutable snapshots of reps, teams and accounts.

Built from the tables by ``store.load_directory`` and cached per process until the directory
changes (every write bumps ``routing_state.directory_token``). Pure values, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from services.routing.accounts import AccountIndex
from services.routing.rules import CompiledRouting
from shared.business_hours import WorkingHours

Strategy = Literal["round_robin", "least_loaded", "capacity"]
OutsideHours = Literal["skip", "hold"]
STRATEGIES: tuple[str, ...] = ("round_robin", "least_loaded", "capacity")


@dataclass(frozen=True, slots=True)
class RepInfo:
    id: UUID
    email: str
    name: str
    weight: int = 1
    hours: WorkingHours = field(default_factory=lambda: WorkingHours.of("UTC", {}))
    status: str = "active"
    away_until: datetime | None = None
    max_open: int | None = None
    max_per_day: int | None = None
    roles: frozenset[str] = frozenset()
    territories: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    products: frozenset[str] = frozenset()
    manager_id: UUID | None = None

    def is_away(self, now: datetime) -> bool:
        return self.away_until is not None and self.away_until > now


@dataclass(frozen=True, slots=True)
class TeamInfo:
    id: UUID
    name: str
    strategy: Strategy = "round_robin"
    outside_hours: OutsideHours = "skip"
    kind: str = "team"
    manager_id: UUID | None = None
    members: tuple[UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class RepLoad:
    """What a rep is carrying now: open leads, and leads given on their local ``day``."""

    open_leads: int = 0
    day: str | None = None
    today: int = 0

    def assigned_on(self, day: str) -> int:
        return self.today if self.day == day else 0


@dataclass(frozen=True)
class Directory:
    token: str
    reps: dict[UUID, RepInfo]
    teams: dict[UUID, TeamInfo]
    accounts: AccountIndex
    routing: CompiledRouting
    ruleset_version: int | None = None
    teams_by_name: dict[str, TeamInfo] = field(init=False)
    members: dict[UUID, tuple[RepInfo, ...]] = field(init=False)
    """Per team id, its members in rep id order (those in ``reps``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "teams_by_name", {t.name: t for t in self.teams.values()})
        members = {
            team.id: tuple(self.reps[r] for r in sorted(team.members) if r in self.reps)
            for team in self.teams.values()
        }
        object.__setattr__(self, "members", members)


def territory_matches(territories: frozenset[str], country: str, region: str, postal: str) -> bool:
    """Entries: ``DE`` (country), ``US-CA`` (country-region), ``DE:10*`` (postal code prefix)."""
    if not country:
        return True  # unknown country: no constraint to apply
    for entry in territories:
        code, _, postal_prefix = entry.partition(":")
        if postal_prefix:
            if code == country and postal.startswith(postal_prefix.rstrip("*")):
                return True
        elif code == country or (region and code == f"{country}-{region}"):
            return True
    return False
