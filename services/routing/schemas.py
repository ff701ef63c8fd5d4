"""Wire models of the owner directory (API, CLI and CSV import share them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.business_hours import parse_hours, validate_hours, zone
from shared.cosign.kind import MAX_CONTENT, Proposal
from shared.params import Instant, Integer


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TeamIn(_In):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
    kind: Literal["team", "queue"] = "team"
    strategy: Literal["round_robin", "least_loaded", "capacity"] = "round_robin"
    outside_hours: Literal["skip", "hold"] = Field(
        "skip",
        description="skip: pass over reps outside their hours; hold: keep them in the "
        "rotation and hold the lead for them until their hours start",
    )
    manager_email: str | None = Field(None, max_length=320)


class RepIn(_In):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = Field(min_length=1, max_length=200)
    teams: list[str] = Field(default_factory=list, description="Names of the teams it works in")
    manager_email: str | None = Field(None, max_length=320)
    roles: list[str] = Field(default_factory=list)
    territories: list[str] = Field(
        default_factory=list, description="DE, US-CA (country-region), DE:10* (postal prefix)"
    )
    segments: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list, description="ISO 639-1: en, de…")
    products: list[str] = Field(default_factory=list)
    weight: Integer = Field(1, ge=1, le=1000, description="Share of round robin, relative")
    max_open: Integer | None = Field(None, ge=0, description="Open leads at most")
    max_per_day: Integer | None = Field(None, ge=0, description="New leads per local day at most")
    time_zone: str = Field("UTC", description="IANA zone of the working hours")
    working_hours: dict[str, list[str]] | str = Field(
        default_factory=dict,
        description='{"mon": ["09:00-17:00"], …} or "mon-fri 09:00-17:00"; none: always',
    )
    status: Literal["active", "deactivated"] = "active"
    away_until: Instant | None = Field(None, description="On leave until then (timezone-aware)")

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("languages", "products", "roles", "segments")
    @classmethod
    def _lower_all(cls, values: list[str]) -> list[str]:
        return sorted({v.strip().lower() for v in values if v.strip()})

    @field_validator("territories")
    @classmethod
    def _upper_all(cls, values: list[str]) -> list[str]:
        return sorted({v.strip().upper() for v in values if v.strip()})

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)  # HoursInvalid is a ValueError: pydantic reports it as the field's error
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]] | str) -> dict[str, list[str]]:
        if isinstance(value, str):
            return parse_hours(value)
        validate_hours(value)
        return value

    @field_validator("away_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone offset, e.g. 2026-12-01T09:00:00Z")
        return value


class AccountIn(_In):
    name: str = Field(min_length=1, max_length=300)
    domain: str | None = Field(None, max_length=253)
    owner_email: str | None = Field(None, max_length=320)


class ReassignIn(_In):
    reason: str = Field(min_length=1, max_length=200)
    owner_email: str | None = Field(
        None, description="Give it to this rep; default: route again, excluding past owners"
    )


class RepView(BaseModel):
    id: UUID
    email: str
    name: str
    teams: list[str]
    weight: int
    status: str
    away_until: datetime | None
    time_zone: str
    working_hours: dict[str, list[str]]
    max_open: int | None
    max_per_day: int | None
    open_leads: int
    roles: list[str]
    territories: list[str]
    segments: list[str]
    languages: list[str]
    products: list[str]


class TeamView(BaseModel):
    id: UUID
    name: str
    kind: str
    strategy: str
    outside_hours: str
    manager_id: UUID | None
    members: list[str]


class AccountView(BaseModel):
    id: UUID
    name: str
    domain: str | None
    owner_id: UUID | None


class RoutingRulesIn(Proposal):
    content: str = Field(min_length=1, max_length=MAX_CONTENT, description="The routing rules YAML")
