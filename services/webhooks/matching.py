"""Pure: which subscriptions receive an event, and what of it they may see."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PATTERN = re.compile(r"^(\*|[a-z0-9_\-]+(\.[a-z0-9_\-]+)*(\.\*)?)$")
ERASED = "lead.erased"


def is_valid_pattern(pattern: str) -> bool:
    """``lead.mql`` (exact), ``sla.*`` (a prefix), or ``*`` (everything)."""
    return bool(PATTERN.match(pattern))


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def wants_lead_events(patterns: Iterable[str]) -> bool:
    return any(p == "*" or p.startswith("lead.") for p in patterns)


def receives(patterns: Sequence[str], event_type: str) -> bool:
    """Whether a subscription gets this event type. ``lead.erased`` goes to every subscriber of
    any lead event: whoever holds a copy of the lead must hear that it is gone."""
    if event_type == ERASED:
        return wants_lead_events(patterns)
    return any(matches(p, event_type) for p in patterns)


def without_unconsented(data: Any, personal: Iterable[str]) -> Any:
    """``data`` minus the personal fields the person did not agree to share.

    Consent is read from the payload's own ``consent`` object: ``{"share": true}`` shares
    everything; ``{"fields": ["email"]}`` shares those fields; no consent shares none of them.
    """
    if not isinstance(data, Mapping):
        return data
    consent = data.get("consent")
    consent = consent if isinstance(consent, Mapping) else {}
    if consent.get("share") is True:
        return data
    shared = set(consent.get("fields") or ()) if isinstance(consent.get("fields"), list) else set()
    return _strip(data, frozenset(personal) - shared)


def _strip(value: Any, hidden: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip(v, hidden) for k, v in value.items() if k not in hidden}
    if isinstance(value, list):
        return [_strip(v, hidden) for v in value]
    return value


def outbound(event: Mapping[str, Any], personal: Iterable[str]) -> dict[str, Any]:
    """The CloudEvent as a CRM receives it: the envelope untouched, ``data`` filtered."""
    body = dict(event)
    if "data" in body:
        body["data"] = without_unconsented(body["data"], personal)
    return body
