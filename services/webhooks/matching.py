"""Pure: which subscriptions receive an event, and what of it they may see."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PATTERN = re.compile(r"^(\*|[a-z0-9_\-]+(\.[a-z0-9_\-]+)*(\.\*)?)$")
ERASED = "lead.erased"
QUALIFIED = "lead.qualified"
"""The handoff: the one event a CRM subscription (HubSpot, Salesforce) takes."""


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


NOT_THE_LEAD = frozenset({"owner"})
"""Parts of an event about someone other than the lead (the rep who owns it): never stripped."""
COMMUNICATION = "communication:"


def consented(consent: Any, grants: Iterable[str]) -> bool:
    """Whether the consent as given agrees to one of ``grants``: a checkbox flag answered true
    (``contact``), or a communication whose answer is true (``communication:<its type id>``)."""
    if not isinstance(consent, Mapping):
        return False
    flags = consent.get("flags")
    flags = flags if isinstance(flags, Mapping) else {}
    agreed = {name for name, value in flags.items() if value is True}
    for communication in consent.get("communications") or ():
        if isinstance(communication, Mapping) and communication.get("value") is True:
            agreed.add(f"{COMMUNICATION}{communication.get('subscription_type_id')}")
    return not agreed.isdisjoint(grants)


def without_unconsented(data: Any, personal: Iterable[str], grants: Iterable[str]) -> Any:
    """``data`` minus the lead's personal fields, unless its ``consent`` agrees to one of
    ``grants`` (the subscription's consent flags). No consent object shares none of them."""
    if not isinstance(data, Mapping):
        return data
    if consented(data.get("consent"), grants):
        return data
    return _strip(data, frozenset(personal))


def _strip(value: Any, hidden: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            k: v if k in NOT_THE_LEAD else _strip(v, hidden)
            for k, v in value.items()
            if k not in hidden
        }
    if isinstance(value, list):
        return [_strip(v, hidden) for v in value]
    return value


def outbound(
    event: Mapping[str, Any], personal: Iterable[str], grants: Iterable[str]
) -> dict[str, Any]:
    """The CloudEvent as a subscriber receives it: the envelope untouched, ``data`` filtered."""
    body = dict(event)
    if "data" in body:
        body["data"] = without_unconsented(body["data"], personal, grants)
    return body
