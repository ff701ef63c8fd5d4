"""A CRM subscription's settings (stored in ``webhook_subscriptions.crm``); secrets are not here.

Maps merge with their defaults: ``properties``/``fields`` keep every default mapping whose Leadflow
field and CRM property the given map does not claim; ``stages``, ``inbound`` and ``statuses``
replace a default entry by key (an empty entry turns it off). The validated model holds the
merged maps, so validating it again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.webhooks.crm.fields import Crm, mapping_problems, name_problem
from shared.events.engagement import OutcomeKind

NEEDS_AMOUNT = frozenset({"opportunity", "booked", "won"})
"""Outcomes intake takes only with an amount."""
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

HUBSPOT_PROPERTIES = {
    "contact.email": "email",
    "contact.first_name": "firstname",
    "contact.last_name": "lastname",
    "contact.phone": "phone",
    "contact.title": "jobtitle",
    "company.name": "company",
    "company.domain": "website",  # the contact's company website; HubSpot keeps a domain there
    "company.country": "country",
}
HUBSPOT_STAGES = {
    "mql": {"lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "NEW"},
    "sql": {"lifecyclestage": "salesqualifiedlead", "hs_lead_status": "OPEN"},
}
SALESFORCE_FIELDS = {
    "contact.email": "Email",
    "contact.first_name": "FirstName",
    "contact.last_name": "LastName",
    "contact.phone": "Phone",
    "contact.title": "Title",
    "company.name": "Company",
    "company.country": "Country",
    "attribution.source": "LeadSource",
}
SALESFORCE_STATUSES = {"mql": "Open - Not Contacted", "sql": "Working - Contacted"}

Text = Annotated[str, Field(min_length=1, max_length=255)]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InboundRule(Settings):
    outcome: OutcomeKind
    reason: str | None = Field(None, min_length=1, max_length=64)


def _rule(outcome: OutcomeKind, reason: str | None = None) -> InboundRule:
    return InboundRule(outcome=outcome, reason=reason)


def hubspot_inbound() -> dict[str, dict[str, InboundRule]]:
    return {
        "lifecyclestage": {"salesqualifiedlead": _rule("accepted")},
        "hs_lead_status": {
            "IN_PROGRESS": _rule("responded"),
            "CONNECTED": _rule("responded"),
            "ATTEMPTED_TO_CONTACT": _rule("responded"),
            "UNQUALIFIED": _rule("rejected", "unqualified"),
            "BAD_TIMING": _rule("rejected", "bad_timing"),
        },
    }


def merge_mapping(defaults: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The defaults the given map leaves alone (by Leadflow field and by CRM property), then it."""
    taken = set(given.values())
    kept = {f: p for f, p in defaults.items() if f not in given and p not in taken}
    return {**kept, **given}


def _checked_mapping(
    defaults: Mapping[str, str], given: Mapping[str, str], crm: Crm
) -> dict[str, str]:
    merged = merge_mapping(defaults, given)
    if problems := mapping_problems(merged, crm):
        raise ValueError("; ".join(problems))
    return merged


def _base_url(url: str) -> str:
    """https, or http to this machine (local fakes in tests); no path, query or credentials."""
    parts = urlsplit(url.strip())
    local = parts.scheme == "http" and (parts.hostname or "") in LOOPBACK
    if parts.scheme != "https" and not local:
        raise ValueError(f"{url!r}: must be an https URL")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: must be a plain https://host URL")
    if parts.path.strip("/"):
        raise ValueError(f"{url!r}: must not have a path")
    return f"{parts.scheme}://{parts.netloc}"


def _owner_key(key: str) -> str:
    """Owners are keyed by the rep's email (compared in lower case) or Leadflow user id."""
    if "@" in key and key.strip() == key and " " not in key:
        return key.lower()
    if UUID_PATTERN.fullmatch(key):
        return key.lower()
    raise ValueError(f"{key!r}: an owner is named by their email or Leadflow user id")


def _ids(values: Mapping[str, str], pattern: str, what: str) -> None:
    for key, value in values.items():
        if not re.fullmatch(pattern, value):
            raise ValueError(f"{key}: {value!r} is not a {what}")


def _no_clash(where: str, mapping: Mapping[str, str], reserved: Mapping[str, str]) -> None:
    for field, target in mapping.items():
        if target in reserved:
            raise ValueError(
                f"{where}: {field}: {target} is set by {reserved[target]}; map another property"
            )


class HubSpotConfig(Settings):
    """A HubSpot portal reached with a private-app token (the secret, kept apart)."""

    base_url: str = "https://api.hubapi.com"
    properties: dict[str, str] = Field(
        default_factory=dict,
        validate_default=True,
        description="Leadflow field → HubSpot property internal name (merged with the defaults)",
    )
    owners: dict[str, str] = Field(
        default_factory=dict,
        description="The rep's email or Leadflow user id → HubSpot owner id (digits)",
    )
    stages: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        validate_default=True,
        description="Leadflow stage → HubSpot properties to set (lifecycle stage, lead status)",
    )
    batch_size: int = Field(100, ge=1, le=100)
    inbound: dict[str, dict[str, InboundRule]] = Field(
        default_factory=dict,
        validate_default=True,
        description="HubSpot property → value → the Leadflow outcome its change means",
    )
    ignored_sources: list[str] = Field(
        ["API", "INTEGRATION"],
        max_length=20,
        description="Changes whose `changeSource` is one of these are not heard: Leadflow's own "
        "upserts come back as API changes, and must not count as a rep's answer",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _base_url(url)

    @field_validator("properties")
    @classmethod
    def _properties(cls, given: dict[str, str]) -> dict[str, str]:
        return _checked_mapping(HUBSPOT_PROPERTIES, given, "hubspot")

    @field_validator("owners")
    @classmethod
    def _owners(cls, given: dict[str, str]) -> dict[str, str]:
        _ids(given, r"[0-9]{1,20}", "HubSpot owner id (digits)")
        return {_owner_key(k): v for k, v in given.items()}

    @field_validator("stages")
    @classmethod
    def _stages(cls, given: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        merged = {**HUBSPOT_STAGES, **given}
        for stage, values in merged.items():
            _hubspot_names(values, f"{stage}: ")
        return merged

    @field_validator("inbound")
    @classmethod
    def _inbound(
        cls, given: dict[str, dict[str, InboundRule]]
    ) -> dict[str, dict[str, InboundRule]]:
        merged = {**hubspot_inbound(), **given}
        _hubspot_names(merged, "")
        for name, values in merged.items():
            for value, rule in values.items():
                if rule.outcome in NEEDS_AMOUNT:
                    raise ValueError(
                        f"{name}.{value}: {rule.outcome} needs an amount, which a contact's "
                        "property change does not carry (docs/crm.md: from a deal)"
                    )
        return merged

    @model_validator(mode="after")
    def _clashes(self) -> Self:
        reserved = {"hubspot_owner_id": "owners"}
        for stage, values in self.stages.items():
            reserved.update(dict.fromkeys(values, f"stages.{stage}"))
        reserved.update({"email": "contact.email (the contact's id)"})
        mapped = {f: p for f, p in self.properties.items() if f != "contact.email"}
        _no_clash("properties", mapped, reserved)
        return self


def _hubspot_names(values: Mapping[str, object], where: str) -> None:
    for name, value in values.items():
        if (trouble := name_problem(name, "hubspot")) is not None:
            raise ValueError(f"{where}{trouble}")
        if isinstance(value, str) and not 0 < len(value) <= 255:
            raise ValueError(f"{where}{name}: a value of 1 to 255 characters")


class SalesforceConfig(Settings):
    """A Salesforce org reached with the OAuth 2.0 client credentials flow (its My Domain)."""

    login_url: str = Field(
        description="The org's My Domain URL, e.g. https://acme.my.salesforce.com"
    )
    api_version: str = Field("v62.0", pattern=r"^v[0-9]{2}\.[0-9]$")
    object: str = "Lead"
    external_id_field: str = Field(
        "Leadflow_Id__c", description="A custom field marked External ID; holds the lead id"
    )
    client_id: str = Field(min_length=1, max_length=255)
    fields: dict[str, str] = Field(
        default_factory=dict,
        validate_default=True,
        description="Leadflow field → Lead field API name (merged with the defaults)",
    )
    owners: dict[str, str] = Field(
        default_factory=dict, description="The rep's email or Leadflow user id → User id (005…)"
    )
    queues: dict[str, str] = Field(
        default_factory=dict,
        description="Leadflow team name or id → Queue id (00G…), for leads waiting in a queue",
    )
    statuses: dict[str, str] = Field(
        default_factory=dict,
        validate_default=True,
        description="Leadflow stage → Lead Status (an empty value: leave Status alone)",
    )
    batch_size: int = Field(200, ge=1, le=200)
    assignment_rules: bool = Field(
        False,
        description="Let the org's active lead assignment rules run (they may replace OwnerId)",
    )

    @field_validator("login_url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _base_url(url)

    @field_validator("object", "external_id_field")
    @classmethod
    def _api_name(cls, name: str) -> str:
        if (trouble := name_problem(name, "salesforce")) is not None:
            raise ValueError(trouble)
        return name

    @field_validator("fields")
    @classmethod
    def _fields(cls, given: dict[str, str]) -> dict[str, str]:
        return _checked_mapping(SALESFORCE_FIELDS, given, "salesforce")

    @field_validator("owners")
    @classmethod
    def _owners(cls, given: dict[str, str]) -> dict[str, str]:
        _ids(given, r"005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?", "User id (005…, 15 or 18 chars)")
        return {_owner_key(k): v for k, v in given.items()}

    @field_validator("queues")
    @classmethod
    def _queues(cls, given: dict[str, str]) -> dict[str, str]:
        _ids(given, r"00G[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?", "Queue id (00G…, 15 or 18 chars)")
        return given

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, given: dict[str, str]) -> dict[str, str]:
        merged = {**SALESFORCE_STATUSES, **given}
        for stage, status in merged.items():
            if len(status) > 255:
                raise ValueError(f"{stage}: a Status of at most 255 characters")
        return merged

    @model_validator(mode="after")
    def _clashes(self) -> Self:
        reserved = {
            "OwnerId": "owners and queues",
            "Status": "statuses",
            "Id": "Salesforce",
            self.external_id_field: "external_id_field (the lead id)",
        }
        _no_clash("fields", self.fields, reserved)
        return self
