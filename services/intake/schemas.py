"""Wire models of the intake API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Scalar = str | int | float | bool | None


class LeadSubmission(BaseModel):
    """An inquiry from a web form or a server-side form backend."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "company": "Analytical Engines Ltd",
                    "source": "web",
                }
            ]
        },
    )

    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=300)
    title: str | None = Field(None, max_length=200)
    source: str = Field("web", min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._\-]*$")
    custom: dict[str, Scalar] = Field(default_factory=dict, description="Other form fields, kept")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _EMAIL.match(value):
            raise ValueError("is not an email address")
        return value.lower()

    @model_validator(mode="after")
    def _reachable(self) -> LeadSubmission:
        if not self.email and not self.phone:
            raise ValueError("an email or a phone number is required")
        return self


class LeadAccepted(BaseModel):
    lead_id: UUID
    inquiry_id: UUID
    new_lead: bool = Field(description="False when the inquiry attached to an existing lead")
    status: str = "accepted"


class HistoryEntry(BaseModel):
    occurred_at: datetime
    kind: str
    detail: dict[str, Any]


class InquiryView(BaseModel):
    id: UUID
    source: str
    received_at: datetime


class LeadView(BaseModel):
    id: UUID
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    source: str
    stage: str
    score: int | None
    ruleset: str | None
    scored_at: datetime | None
    created_at: datetime
    updated_at: datetime
    inquiries: list[InquiryView]
    history: list[HistoryEntry]
