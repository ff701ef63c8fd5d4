"""The Leadflow fields a CRM mapping may name, and their values in a ``lead.qualified`` event.

A field is the dotted path of a value in the event's ``data``: ``contact.email``,
``qualification.score``, ``attribution.utm.campaign``. The catalogue is walked from the event's
model (``LeadQualifiedData``), so it cannot drift from what the event carries. Special forms:

- ``<key>`` families: ``custom.<key>`` (the form's other fields), ``attribution.utm.<key>``,
  ``attribution.ad.ids.<key>`` (the ad platform's ids, e.g. ``attribution.ad.ids.campaign_id``),
  ``consent.flags.<key>``: any key of that object, written in place of ``<key>``;
- lists (``qualification.rules``, ``qualification.missing``) are joined with ``;``;
- ``team``: the owner's team, or the queue's team while the lead waits in one.

Personal fields may be missing (a lead whose consent does not cover the subscriber): a missing
value is None, never an error.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any, Literal, Union, get_args, get_origin
from uuid import UUID

import orjson
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from shared.events.handoff import LeadQualifiedData

Value = str | int | float | bool | None
Crm = Literal["hubspot", "salesforce"]

KEY = "<key>"
KNOWN_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "attribution.utm": ("utm_{key} as given", ("source", "medium", "campaign", "term", "content")),
    "attribution.ad.ids": (
        "The ad platform's {key}",
        ("campaign_id", "adgroup_id", "creative_id", "form_id", "gcl_id", "page_id", "ad_id"),
    ),
}
DERIVED = {"team": "The owner's team, or the queue's team while the lead waits in one"}
SEE = "see GET /v1/subscriptions/crm-fields"

HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_SF_PART = r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*(?<!_)"
SALESFORCE_NAME = re.compile(rf"^(?:{_SF_PART}__)?{_SF_PART}(?:__c)?$")
NAME_RULES: dict[Crm, tuple[re.Pattern[str], str]] = {
    "hubspot": (HUBSPOT_NAME, "lowercase letters, digits and underscores, starting with a letter"),
    "salesforce": (SALESFORCE_NAME, "letters, digits and single underscores, optional __c"),
}


def _walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str]]:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        kind = _unwrap(info.annotation)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _walk(kind, f"{path}.")
        elif get_origin(kind) is dict:
            yield from _family(path, info)
        elif get_origin(kind) is list:
            if get_args(kind) and _is_scalar(get_args(kind)[0]):
                yield path, f"{_describe(path, info)} (joined with ;)"
        else:
            yield path, _describe(path, info)


def _family(path: str, info: FieldInfo) -> Iterator[tuple[str, str]]:
    label, keys = KNOWN_KEYS.get(path, ("", ()))
    for key in keys:
        yield f"{path}.{key}", label.format(key=key)
    yield f"{path}.{KEY}", f"{_describe(path, info)}: any key, in place of {KEY}"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _is_scalar(kind: Any) -> bool:
    return kind in (str, int, float, bool, UUID, datetime, date)


def _describe(path: str, info: FieldInfo) -> str:
    return info.description or path.replace(".", " ").replace("_", " ")


FIELDS: dict[str, str] = {**dict(_walk(LeadQualifiedData, "")), **DERIVED}
"""Every field a mapping may name → what it holds (``GET /v1/subscriptions/crm-fields``)."""
FAMILIES = tuple(path[: -len(KEY)] for path in FIELDS if path.endswith(KEY))
"""Prefixes (with their trailing dot) under which any key may follow."""


def is_field(path: str) -> bool:
    if path in FIELDS:
        return True
    return any(path.startswith(p) and len(path) > len(p) for p in FAMILIES)


def value(data: Mapping[str, Any], path: str) -> Value:
    """The field's value in the event's ``data``; missing (or empty) → None."""
    if path == "team":
        return value(data, "owner.team") or value(data, "queue.team")
    return _plain(_lookup(data, path))


def _lookup(node: Any, path: str) -> Any:
    while path:
        if not isinstance(node, Mapping):
            return None
        if path in node:  # a key with dots in it (a form field named "a.b")
            return node[path]
        head, _, path = path.partition(".")
        node = node.get(head)
    return node


def _plain(raw: Any) -> Value:
    if raw is None or isinstance(raw, bool | int | float):
        return raw
    if isinstance(raw, datetime | date):
        return raw.isoformat()
    if isinstance(raw, list | tuple):
        joined = ";".join(str(p) for p in (_plain(item) for item in raw) if p is not None)
        return joined or None
    if isinstance(raw, Mapping):
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str).decode()
    text = str(raw)
    return text or None


def mapping_problems(mapping: Mapping[str, str], crm: Crm | None = None) -> list[str]:
    """What is wrong with a Leadflow field → CRM property mapping, each naming its field.
    ``crm`` picks the property-name rules; None accepts a name either CRM allows."""
    problems: list[str] = []
    claimed: dict[str, str] = {}
    for field, target in mapping.items():
        if not is_field(field):
            problems.append(f"{field}: not a Leadflow field ({SEE})")
        if (trouble := name_problem(target, crm)) is not None:
            problems.append(f"{field}: {trouble}")
        elif target in claimed:
            problems.append(f"{field}: {target} is already mapped from {claimed[target]}")
        else:
            claimed[target] = field
    return problems


def name_problem(name: object, crm: Crm | None) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return "the CRM property name is empty"
    rules = [NAME_RULES[crm]] if crm else list(NAME_RULES.values())
    if any(pattern.fullmatch(name) for pattern, _ in rules):
        return None
    which = {"hubspot": "HubSpot property", "salesforce": "Salesforce field"}.get(crm or "", "CRM")
    return f"{name!r} is not a valid {which} name ({'; or '.join(r for _, r in rules)})"


def owner_of(data: Mapping[str, Any], owners: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The CRM's id for the lead's owner (by their email, then their Leadflow id) and how to
    name the owner in a note; (None, None) when the lead waits in a queue."""
    owner = data.get("owner")
    if not isinstance(owner, Mapping):
        return None, None
    email, user = value(owner, "email"), value(owner, "id")
    keys = [str(k).lower() for k in (email, user) if k is not None]
    mapped = next((owners[k] for k in keys if k in owners), None)
    return mapped, str(email or user or "?")
