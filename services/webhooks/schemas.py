"""Wire models of the subscriptions API (and the CLI's ``--json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.webhooks import filters
from services.webhooks.matching import is_valid_pattern

Format = Literal["cloudevents", "slack"]
FORMAT_HELP = (
    "The body POSTed: `cloudevents`, the event itself (default); `slack`, a one-line chat "
    'message `{"text": …, "blocks": […]}` for an incoming webhook (Slack, Mattermost, '
    "Rocket.Chat, a Teams workflow). Both are signed the same way"
)


def _patterns(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for pattern in value:
        if not is_valid_pattern(pattern):
            raise ValueError(f"{pattern!r} is not an event type, a prefix like 'sla.*', or '*'")
    return list(dict.fromkeys(value))


def _filter(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    try:
        filters.validate(value)
    except filters.InvalidFilter as error:
        raise ValueError(f"not a valid CEL expression: {error}") from None
    return value


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/leadflow",
                    "event_types": ["lead.mql", "lead.sql", "sla.*"],
                    "filter": 'data.segment == "enterprise"',
                    "description": "Salesforce, enterprise team",
                },
                {
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "event_types": ["sla.*"],
                    "format": "slack",
                    "description": "#sales-ops: SLA alerts",
                },
            ]
        },
    )

    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to")
    event_types: list[str] = Field(
        min_length=1, max_length=50, description="Exact types, prefixes like `sla.*`, or `*`"
    )
    filter: str | None = Field(
        None, max_length=2000, description="Optional CEL expression over type, subject and data"
    )
    description: str = Field("", max_length=500)
    enabled: bool = True
    format: Format = Field("cloudevents", description=FORMAT_HELP)

    _types = field_validator("event_types")(_patterns)
    _cel = field_validator("filter")(_filter)


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    filter: str | None = Field(None, max_length=2000, description="An empty string removes it")
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = Field(None, description="true re-enables and closes the circuit")
    format: Format | None = Field(
        None, description="The body of the messages recorded from now on (queued ones keep theirs)"
    )

    _types = field_validator("event_types")(_patterns)

    @field_validator("filter")
    @classmethod
    def _cel(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return ""
        return _filter(value)


class SubscriptionView(BaseModel):
    id: UUID
    url: str
    event_types: list[str]
    filter: str | None
    description: str
    format: Format
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: datetime | None
    paused_until: datetime | None
    previous_secret_until: datetime | None = Field(
        None, description="Until then the previous secret also signs"
    )
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionView):
    secret: str = Field(description="Shown once: keep it to verify signatures")


class SecretRotated(BaseModel):
    secret: str = Field(description="The new secret, shown once")
    previous_valid_until: datetime = Field(description="The old secret also signs until then")


class MessageView(BaseModel):
    id: UUID
    subscription_id: UUID
    event_id: str = Field(description="Also the `webhook-id` header: receivers dedupe on it")
    event_type: str
    lead_id: str
    status: str = Field(description="pending, delivered or exhausted")
    attempts: int
    due_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AttemptView(BaseModel):
    id: UUID
    message_id: UUID
    subscription_id: UUID
    lead_id: str
    event_type: str
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    outcome: str
    error: str | None
    response_excerpt: str | None


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Messages created at or after this time")
    include_delivered: bool = Field(
        False, description="Also send again what was delivered (default: exhausted ones only)"
    )


class Replayed(BaseModel):
    replayed: int
