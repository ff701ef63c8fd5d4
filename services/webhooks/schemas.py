"""Wire models of the subscriptions API (and the CLI's ``--json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.webhooks import filters
from services.webhooks.crm.config import HubSpotConfig, SalesforceConfig
from services.webhooks.matching import QUALIFIED, is_valid_pattern
from shared.params import Instant

Format = Literal["cloudevents", "slack"]
Kind = Literal["webhook", "hubspot", "salesforce"]
KIND_HELP = (
    "`webhook`: the events POSTed, signed, to `url` (default); `hubspot`, `salesforce`: "
    "`lead.qualified` upserted in batches through the CRM's API (docs/crm.md)"
)
ConsentFlag = Annotated[str, StringConstraints(min_length=1, max_length=120)]
CONSENT_HELP = (
    "The consent that lets the lead's personal fields through: a checkbox flag answered true, "
    "or `communication:<subscription type id>`; any one suffices. Unset: the default "
    "(`LEADFLOW_WEBHOOKS__CONSENT_FLAGS`); `[]`: never"
)
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


class CrmCredentials(BaseModel):
    """A CRM's secrets: stored, never shown again, never logged."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(
        None, max_length=500, description="HubSpot: the private app's access token (Bearer)"
    )
    app_secret: SecretStr | None = Field(
        None,
        max_length=500,
        description="HubSpot: the app's client secret, which signs the webhooks it sends back",
    )
    client_secret: SecretStr | None = Field(
        None, max_length=500, description="Salesforce: the connected app's consumer secret"
    )

    def given(self) -> dict[str, str]:
        return {
            name: value.get_secret_value()
            for name, value in (
                ("token", self.token),
                ("app_secret", self.app_secret),
                ("client_secret", self.client_secret),
            )
            if value is not None and value.get_secret_value()
        }


REQUIRED_CREDENTIALS = {"hubspot": "token", "salesforce": "client_secret"}


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/leadflow",
                    "event_types": ["lead.qualified", "sla.*"],
                    "filter": 'data.company.country == "DE"',
                    "description": "Our own receiver, DACH",
                },
                {
                    "url": "https://hooks.slack.com/services/T000/B000/XXXX",
                    "event_types": ["sla.*"],
                    "format": "slack",
                    "description": "#sales-ops: SLA alerts",
                },
                {
                    "kind": "hubspot",
                    "hubspot": {
                        "owners": {"ana@example.com": "41629779"},
                        "properties": {"attribution.utm.campaign": "leadflow_campaign"},
                    },
                    "credentials": {"token": "pat-eu1-…", "app_secret": "…"},
                    "description": "HubSpot portal",
                },
                {
                    "kind": "salesforce",
                    "salesforce": {
                        "login_url": "https://acme.my.salesforce.com",
                        "client_id": "3MVG9…",
                        "owners": {"ana@example.com": "0055e000001AbCdAAK"},
                    },
                    "credentials": {"client_secret": "…"},
                    "description": "Salesforce org",
                },
            ]
        },
    )

    kind: Kind = Field("webhook", description=KIND_HELP)
    url: str | None = Field(
        None,
        max_length=2000,
        description="http(s) URL the events are POSTed to (a webhook; a CRM's comes from its "
        "settings)",
    )
    event_types: list[str] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Exact types, prefixes like `sla.*`, or `*` (a CRM: `lead.qualified`)",
    )
    filter: str | None = Field(
        None, max_length=2000, description="Optional CEL expression over type, subject and data"
    )
    description: str = Field("", max_length=500)
    enabled: StrictBool = True
    format: Format = Field("cloudevents", description=FORMAT_HELP)
    consent_flags: list[ConsentFlag] | None = Field(None, max_length=50, description=CONSENT_HELP)
    hubspot: HubSpotConfig | None = Field(None, description="kind `hubspot`: its settings")
    salesforce: SalesforceConfig | None = Field(None, description="kind `salesforce`")
    credentials: CrmCredentials | None = Field(None, description="A CRM's secrets")

    _types = field_validator("event_types")(_patterns)
    _cel = field_validator("filter")(_filter)

    @model_validator(mode="after")
    def _kind(self) -> SubscriptionIn:
        configs = {"hubspot": self.hubspot, "salesforce": self.salesforce}
        for kind, config in configs.items():
            if config is not None and self.kind != kind:
                raise ValueError(f"{kind}: only for a subscription of kind {kind}")
        if self.kind == "webhook":
            if self.url is None or self.event_types is None:
                raise ValueError("url and event_types: a webhook needs both")
            if self.credentials is not None:
                raise ValueError("credentials: only for a CRM subscription")
            return self
        if self.url is not None:
            raise ValueError(f"url: a {self.kind} subscription's comes from its settings")
        if self.event_types not in (None, [QUALIFIED]):
            raise ValueError(f"event_types: a {self.kind} subscription takes {QUALIFIED} only")
        if self.format != "cloudevents":
            raise ValueError(f"format: not for a {self.kind} subscription")
        if configs[self.kind] is None:
            raise ValueError(f"{self.kind}: the settings of a {self.kind} subscription")
        needed = REQUIRED_CREDENTIALS[self.kind]
        if needed not in (self.credentials.given() if self.credentials else {}):
            raise ValueError(f"credentials.{needed}: required for a {self.kind} subscription")
        self.event_types = [QUALIFIED]
        return self

    @property
    def crm(self) -> HubSpotConfig | SalesforceConfig | None:
        return self.hubspot or self.salesforce


class SubscriptionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1, max_length=50)
    filter: str | None = Field(None, max_length=2000, description="An empty string removes it")
    description: str | None = Field(None, max_length=500)
    enabled: StrictBool | None = Field(None, description="true re-enables and closes the circuit")
    format: Format | None = Field(
        None, description="The body of the messages recorded from now on (queued ones keep theirs)"
    )
    consent_flags: list[ConsentFlag] | None = Field(
        None, max_length=50, description=CONSENT_HELP + " (null: back to the default)"
    )
    hubspot: HubSpotConfig | None = Field(None, description="Replaces a HubSpot subscription's")
    salesforce: SalesforceConfig | None = Field(None, description="Replaces a Salesforce one's")
    credentials: CrmCredentials | None = Field(None, description="The secrets given replace theirs")

    _types = field_validator("event_types")(_patterns)

    @field_validator("filter")
    @classmethod
    def _cel(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return ""
        return _filter(value)


class SubscriptionView(BaseModel):
    id: UUID
    kind: Kind
    url: str
    event_types: list[str]
    filter: str | None
    description: str
    format: Format
    consent_flags: list[str] | None = Field(None, description="None: the default")
    hubspot: HubSpotConfig | None = None
    salesforce: SalesforceConfig | None = None
    credentials: list[str] = Field(
        default_factory=list, description="The names of the secrets held (never their values)"
    )
    inbound_path: str | None = Field(
        None, description="HubSpot: where its app's webhooks go (after the public URL)"
    )
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
    secret: str = Field(description="Shown once: keep it to verify signatures (a webhook)")


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

    since: Instant = Field(description="Messages created at or after this time")
    include_delivered: StrictBool = Field(
        False, description="Also send again what was delivered (default: exhausted ones only)"
    )


class Replayed(BaseModel):
    replayed: int
