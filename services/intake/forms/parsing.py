"""From what was posted to the input of ``LeadSubmission``: a JSON body, a web form's fields or
HubSpot's forms submission shape. Pure: no I/O.

The result keeps the raw submission (minus the API key) and where each canonical field came from,
so a problem names the field the client sent (``fields.2.value``, not ``email``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from services.intake.schemas import HubSpotSubmission

FORM_FIELDS = {
    "email": "email",
    "phone": "phone",
    "mobilephone": "phone",
    "first_name": "first_name",
    "firstname": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "company": "company",
    "company_name": "company",
    "title": "title",
    "job_title": "title",
    "jobtitle": "title",
    "website": "website",
    "country": "country",
    "source": "source",
    "page_url": "page_url",
    "referrer": "referrer",
}
"""Form field names (ours and HubSpot's contact property names) → canonical field."""
UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
FULL_NAME = ("name", "full_name", "fullname")
FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "n"})


class InputError(ValueError):
    """The body cannot be read as a submission; ``field`` names where."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail


@dataclass
class Parsed:
    format: str
    raw: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    honeypot: bool = False
    locations: dict[str, str] = field(default_factory=dict)

    def where(self, location: tuple[Any, ...]) -> tuple[Any, ...]:
        """A validation error's location in the client's terms."""
        if location and str(location[0]) in self.locations:
            return (self.locations[str(location[0])], *location[1:])
        return location


def parse_json(payload: Any, *, honeypot: str) -> Parsed:
    if not isinstance(payload, dict):
        raise InputError("body", "must be a JSON object")
    if isinstance(payload.get("fields"), list):
        return _hubspot(payload, honeypot=honeypot)
    data = dict(payload)
    trap = data.pop(honeypot, None)
    return Parsed("json", raw=dict(payload), data=data, honeypot=_filled(trap))


def parse_form(items: Iterable[tuple[str, str]], *, honeypot: str) -> Parsed:
    """A web form's fields: known names map to the canonical fields, the rest is ``custom``."""
    parsed = Parsed("form", raw={})
    data = parsed.data
    custom: dict[str, Any] = {}
    consent: dict[str, Any] = {}
    utm: dict[str, str] = {}
    for name, value in items:
        if name == "key":
            parsed.key = parsed.key or value.strip() or None
            continue
        _keep(parsed.raw, name, value)
        if name == honeypot:
            parsed.honeypot = parsed.honeypot or _filled(value)
        elif name in FORM_FIELDS:
            target = FORM_FIELDS[name]
            if value.strip() and target not in data:
                data[target] = value
                parsed.locations[target] = name
        elif name in UTM:
            if value.strip():
                utm.setdefault(name.removeprefix("utm_"), value)
        elif name == "consent_text":
            consent["text"] = value
        elif name == "consent" or name.startswith("consent_"):
            consent.setdefault("flags", {})[name] = value.strip().lower() not in FALSE_WORDS
        elif name in FULL_NAME:
            _split_name(data, value)
        else:
            _keep(custom, name, value)
    for part, collected in (("utm", utm), ("consent", consent), ("custom", custom)):
        if collected:
            data[part] = collected
    return parsed


def _hubspot(payload: dict[str, Any], *, honeypot: str) -> Parsed:
    try:
        body = HubSpotSubmission.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InputError(where, first["msg"]) from None
    parsed = Parsed("hubspot", raw=dict(payload))
    data = parsed.data
    custom: dict[str, Any] = {}
    for index, item in enumerate(body.fields):
        value = "" if item.value is None else str(item.value)
        name = item.name
        if name == honeypot:
            parsed.honeypot = parsed.honeypot or _filled(value)
        elif name in FORM_FIELDS and FORM_FIELDS[name] not in data:
            if value.strip():
                data[FORM_FIELDS[name]] = value
                parsed.locations[FORM_FIELDS[name]] = f"fields.{index}.value"
        elif name in UTM:
            if value.strip():
                data.setdefault("utm", {}).setdefault(name.removeprefix("utm_"), value)
        else:
            custom[name] = item.value
    if body.context:
        context = body.context
        if context.pageUri:
            data["page_url"] = context.pageUri
        for name, given in (
            ("hutk", context.hutk),
            ("page_name", context.pageName),
            ("ip_address", context.ipAddress),
        ):
            if given:
                custom.setdefault(name, given)
    consent = body.legalConsentOptions and body.legalConsentOptions.consent
    if consent:
        data["consent"] = {
            "text": consent.text,
            "flags": {}
            if consent.consentToProcess is None
            else {"consentToProcess": consent.consentToProcess},
            "communications": [
                {"value": c.value, "subscription_type_id": c.subscriptionTypeId, "text": c.text}
                for c in consent.communications
            ],
        }
    if custom:
        data["custom"] = custom
    return parsed


def _split_name(data: dict[str, Any], value: str) -> None:
    words = value.split()
    if not words:
        return
    if len(words) > 1:
        data.setdefault("last_name", words[-1])
        words = words[:-1]
    data.setdefault("first_name", " ".join(words))


def _keep(into: dict[str, Any], name: str, value: str) -> None:
    """A repeated form field (a group of checkboxes) becomes a list of its values."""
    if name not in into:
        into[name] = value
    elif isinstance(into[name], list):
        into[name].append(value)
    else:
        into[name] = [into[name], value]


def _filled(value: Any) -> bool:
    return value is not None and str(value).strip() != ""
