"""From what was posted to the input of ``LeadSubmission``: a JSON body, a web form's fields or
HubSpot's forms submission shape. Pure: no I/O.

The result keeps the raw submission (minus the API key) and where each canonical field came from,
so a problem names the field the client sent (``fields.2.value``, not ``email``).

A JSON body reads the same flat names a form does (``utm_source``, ``name``, ``firstname``,
``consent_text``…); any other field is kept in ``custom`` and named in ``kept_as_custom``, so a
form that gains a field goes on producing leads. A field it knows keeps its type checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from services.intake.schemas import HubSpotSubmission, LeadSubmission

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


CANONICAL = frozenset(LeadSubmission.model_fields)
"""The fields of a JSON body that are ``LeadSubmission``'s own."""


@dataclass
class Parsed:
    format: str
    raw: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    honeypot: bool = False
    locations: dict[str, str] = field(default_factory=dict)
    kept_as_custom: list[str] = field(default_factory=list)
    """The posted fields it did not know, kept in ``custom``."""

    def where(self, location: tuple[Any, ...]) -> tuple[Any, ...]:
        """A validation error's location in the client's terms."""
        two = ".".join(str(part) for part in location[:2])
        if len(location) >= 2 and two in self.locations:  # utm.source ← utm_source
            return (self.locations[two], *location[2:])
        if location and str(location[0]) in self.locations:
            return (self.locations[str(location[0])], *location[1:])
        return location


def parse_json(payload: Any, *, honeypot: str) -> Parsed:
    if not isinstance(payload, dict):
        raise InputError("body", "must be a JSON object")
    if isinstance(payload.get("fields"), list):
        return _hubspot(payload, honeypot=honeypot)
    parsed = Parsed("json", raw={k: v for k, v in payload.items() if k != "key"})
    flat = _Flat(parsed)
    for name, value in payload.items():
        if name == "key" and isinstance(value, str):  # the public key, as a form's hidden field
            parsed.key = value.strip() or None
        elif name == honeypot:
            parsed.honeypot = _filled(value)
        elif name in CANONICAL and not (name == "consent" and not isinstance(value, dict)):
            parsed.data[name] = value
        else:
            flat.place(name, value)
    flat.finish()
    return parsed


def parse_form(items: Iterable[tuple[str, str]], *, honeypot: str) -> Parsed:
    """A web form's fields: known names map to the canonical fields, the rest is ``custom``."""
    parsed = Parsed("form", raw={})
    flat = _Flat(parsed)
    for name, value in items:
        if name == "key":
            parsed.key = parsed.key or value.strip() or None
            continue
        _keep(parsed.raw, name, value)
        if name == honeypot:
            parsed.honeypot = parsed.honeypot or _filled(value)
        else:
            flat.place(name, value)
    flat.finish()
    return parsed


class _Flat:
    """Flat field names, as forms and form snippets send them, placed in the canonical shape;
    a field posted in that shape too (``utm``, ``consent``, ``custom``) wins over its flat twin."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.custom: dict[str, Any] = {}
        self.consent: dict[str, Any] = {}
        self.utm: dict[str, Any] = {}

    def place(self, name: str, value: Any) -> None:
        data, text = self.parsed.data, value if isinstance(value, str) else None
        if name in FORM_FIELDS:
            target = FORM_FIELDS[name]
            if _filled(value) and target not in data:
                data[target] = value
                self.parsed.locations[target] = name
        elif name in UTM:
            if _filled(value):
                self.utm.setdefault(name.removeprefix("utm_"), value)
                self.parsed.locations.setdefault(f"utm.{name.removeprefix('utm_')}", name)
        elif name == "consent_text":
            self.consent["text"] = value
            self.parsed.locations["consent.text"] = name
        elif name == "consent" or name.startswith("consent_"):
            self.consent.setdefault("flags", {})[name] = _checked(value)
        elif name in FULL_NAME and text is not None:
            _split_name(data, text)
        else:
            _keep(self.custom, name, _scalar(value))
            self.parsed.kept_as_custom.append(name)

    def finish(self) -> None:
        data = self.parsed.data
        for part, collected in (("utm", self.utm), ("consent", self.consent)):
            given = data.get(part)
            if collected and given is None:
                data[part] = collected
            elif collected and isinstance(given, dict):
                data[part] = collected | given
        if self.custom:
            given = data.get("custom")
            data["custom"] = self.custom | given if isinstance(given, dict) else self.custom


def _checked(value: Any) -> bool:
    """A checkbox's answer: ``true``, ``"on"``, ``"yes"``, ``1``… (an unchecked box: false)."""
    if isinstance(value, bool):
        return value
    return value is not None and str(value).strip().lower() not in FALSE_WORDS


def _scalar(value: Any) -> Any:
    """A custom field's value as ``custom`` holds it: a scalar, a list of them, or JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(
        v is None or isinstance(v, str | int | float | bool) for v in value
    ):
        return value
    return orjson.dumps(value).decode()


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
