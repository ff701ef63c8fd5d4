"""HubSpot: contacts upserted in batches, and what HubSpot's webhooks say back (pure).

Outbound: ``POST /crm/v3/objects/contacts/batch/upsert`` with ``idProperty: email``, at most 100
inputs. Each input carries its message id as ``objectWriteTraceId``: HubSpot then answers a
partial failure with 207 and names each failed input in ``errors[].context.objectWriteTraceId``
(developers.hubspot.com/docs/api-reference/error-handling, "Multi-status errors"). Errors without
it are matched by ``context.ids`` (emails), then by the property they name, else they fail every
record that has no result.

A record's error is retried only when waiting can help: rate limits, a locked or conflicting
write (two upserts of one new contact racing), a HubSpot-side failure. A rejected value
(``VALIDATION_ERROR``, an unknown property or owner) is not: sending it again fails again.

Inbound: webhooks v3 signatures (``X-HubSpot-Signature-v3``) and ``contact.propertyChange``
events mapped to Leadflow outcomes (``HubSpotConfig.inbound``) or owner changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.webhooks.crm.config import HubSpotConfig, InboundRule
from services.webhooks.crm.fields import owner_of, value
from services.webhooks.crm.records import (
    Batch,
    RecordResult,
    RequestFailure,
    clip,
    decoded,
    fail_all,
    failed,
    header,
    retry_after,
)
from shared.events.engagement import OutcomeKind

UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
NO_EMAIL = (
    "no email to upsert the contact by: the lead gave none, or its consent does not cover "
    "this subscriber"
)
RETRY_CATEGORIES = frozenset(
    {"RATE_LIMITS", "LOCKED", "CONFLICT", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}
)
LOCK_WAIT_S = 2.0
"""HubSpot's 423 locks last 2 seconds (error-handling docs)."""


def build_upsert(config: HubSpotConfig, items: Sequence[tuple[UUID, Mapping[str, Any]]]) -> Batch:
    """One upsert of the messages' contacts; messages that cannot go are in ``skipped``."""
    inputs: list[dict[str, Any]] = []
    included: list[UUID] = []
    skipped: dict[UUID, RecordResult] = {}
    notes: dict[UUID, str] = {}
    keys: dict[UUID, str] = {}
    for message, document in items:
        data = _data(document)
        email = _email(data)
        if email is None:
            skipped[message] = failed(NO_EMAIL, retry=False)
        elif email.lower() in keys.values():
            skipped[message] = failed(f"{email} is already in this batch: next batch", retry=True)
        elif len(inputs) >= config.batch_size:
            skipped[message] = failed("the batch is full: next batch", retry=True)
        else:
            properties, note = _properties(config, data)
            inputs.append(_input(message, email, properties))
            included.append(message)
            keys[message] = email.lower()
            if note:
                notes[message] = note
    url = config.base_url + UPSERT_PATH
    return Batch("POST", url, {"inputs": inputs}, dict(HEADERS), included, skipped, notes, keys)


def _data(document: Mapping[str, Any]) -> Mapping[str, Any]:
    data = document.get("data")
    return data if isinstance(data, Mapping) else {}


def _email(data: Mapping[str, Any]) -> str | None:
    email = value(data, "contact.email")
    if isinstance(email, str) and "@" in email.strip():
        return email.strip()
    return None


def _input(message: UUID, email: str, properties: dict[str, str]) -> dict[str, Any]:
    return {
        "idProperty": "email",
        "id": email,
        "objectWriteTraceId": str(message),
        "properties": properties,
    }


def _properties(
    config: HubSpotConfig, data: Mapping[str, Any]
) -> tuple[dict[str, str], str | None]:
    """HubSpot wants every value as a string; a missing value is left out (not cleared)."""
    properties = {
        name: _text(found)
        for field, name in config.properties.items()
        if (found := value(data, field)) is not None
    }
    stage = value(data, "qualification.stage")
    if isinstance(stage, str):
        properties.update(config.stages.get(stage, {}))
    owner, who = owner_of(data, config.owners)
    if owner is not None:
        properties["hubspot_owner_id"] = owner
        return properties, None
    if who is None:  # waiting in a queue: HubSpot has no queues, so no owner is set
        return properties, None
    return properties, f"owner {who} has no HubSpot owner id mapped: sent without hubspot_owner_id"


def _text(found: str | int | float | bool) -> str:
    if isinstance(found, bool):
        return "true" if found else "false"
    return str(found)


def parse_upsert(status: int, body: bytes, batch: Batch) -> dict[UUID, RecordResult]:
    """Each included message's result from a 200/201/207 answer."""
    answer = decoded(body)
    if status not in (200, 201, 207) or not isinstance(answer, Mapping):
        unread = f"HubSpot answered HTTP {status} without a readable batch result"
        return fail_all(batch, RequestFailure(retry=True, wait_s=None, message=unread))
    taken = _taken(answer.get("results"), batch)
    rejected = _rejected(answer.get("errors"), batch, set(taken))
    missing = "HubSpot's answer did not mention this contact"
    return {
        message: rejected.get(message)
        or taken.get(message)
        or failed(missing, retry=True, note=batch.notes.get(message))
        for message in batch.included
    }


def _taken(results: object, batch: Batch) -> dict[UUID, RecordResult]:
    traces = {str(m): m for m in batch.included}
    by_email = {email: m for m, email in batch.keys.items()}
    taken: dict[UUID, RecordResult] = {}
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, Mapping):
            continue
        email = str(value(result, "properties.email") or "").lower()
        message = traces.get(str(result.get("objectWriteTraceId"))) or by_email.get(email)
        if message is None or result.get("id") is None:
            continue
        created = result.get("new") if isinstance(result.get("new"), bool) else None
        record = str(result["id"])
        note = batch.notes.get(message)
        taken[message] = RecordResult(ok=True, record_id=record, note=note, created=created)
    return taken


def _rejected(errors: object, batch: Batch, taken: set[UUID]) -> dict[UUID, RecordResult]:
    rejected: dict[UUID, RecordResult] = {}
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, Mapping):
            continue
        targets = _targets(error, batch, taken | set(rejected))
        message, retry = _error_text(error), _retryable(error)
        for target in targets:
            if target not in rejected:
                note = batch.notes.get(target)
                rejected[target] = failed(message, retry=retry, note=note)
    return rejected


def _targets(error: Mapping[str, Any], batch: Batch, settled: set[UUID]) -> list[UUID]:
    """The messages an error is about: named by trace id or email, else those that sent the
    property it names, else every message without a result."""
    context = _context(error)
    traces = {str(m): m for m in batch.included}
    named = [traces[t] for t in _strings(context.get("objectWriteTraceId")) if t in traces]
    by_email = {email: m for m, email in batch.keys.items()}
    named += [by_email[e.lower()] for e in _strings(context.get("ids")) if e.lower() in by_email]
    if named:
        return named
    open_ = [m for m in batch.included if m not in settled]
    sent = _sent(batch)
    names = _property_names(error)
    about = [m for m in open_ if names & set(sent.get(m, {}))]
    return about or open_


def _context(error: Mapping[str, Any]) -> Mapping[str, Any]:
    context = error.get("context")
    return context if isinstance(context, Mapping) else {}


def _strings(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    return [str(item) for item in raw] if isinstance(raw, list) else []


def _sent(batch: Batch) -> dict[UUID, Mapping[str, Any]]:
    inputs = batch.json.get("inputs", [])
    return {m: i.get("properties", {}) for m, i in zip(batch.included, inputs, strict=False)}


PROPERTY_IN_MESSAGE = re.compile(r'"name"\s*:\s*"([a-z0-9_]+)"')


def _property_names(error: Mapping[str, Any]) -> set[str]:
    context = _context(error)
    names = {n for key in ("propertyName", "properties") for n in _strings(context.get(key))}
    for detail in error.get("errors") or []:
        if isinstance(detail, Mapping) and isinstance(detail.get("in"), str):
            names.add(detail["in"])
    names.update(PROPERTY_IN_MESSAGE.findall(str(error.get("message") or "")))
    return names


def _error_text(error: Mapping[str, Any]) -> str:
    category = str(error.get("category") or "ERROR")
    return clip(f"{category}: {error.get('message') or 'no message'}")


def _retryable(error: Mapping[str, Any]) -> bool:
    if str(error.get("category") or "") in RETRY_CATEGORIES:
        return True
    status = str(error.get("status") or "")
    return status.isdigit() and (int(status) in (423, 429) or int(status) >= 500)


def request_failed(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> RequestFailure:
    """What a whole-request failure means. A refused token or scope needs a person, yet the
    messages stay on the retry schedule so deliveries resume once the token is fixed."""
    said = _said(body)
    wait = retry_after(headers, now)
    if status == 401:
        text = f"HubSpot refused the private-app token (401: {said}); store a valid token"
        return RequestFailure(True, None, clip(f"{text}, deliveries resume on the schedule"))
    if status == 403:
        text = f"HubSpot refused access (403: {said}); the private app needs the"
        scope = " crm.objects.contacts.write scope, deliveries resume on the schedule"
        return RequestFailure(True, None, clip(text + scope))
    if status == 429:
        return _rate_limited(headers, body, said, wait)
    if status == 423:
        return RequestFailure(True, wait or LOCK_WAIT_S, clip(f"HubSpot locked (423: {said})"))
    if status in (408, 477) or status >= 500:
        return RequestFailure(True, wait, clip(f"HubSpot unavailable ({status}: {said})"))
    return RequestFailure(False, None, clip(f"HubSpot refused the request ({status}: {said})"))


def _rate_limited(
    headers: Mapping[str, str], body: bytes, said: str, wait: float | None
) -> RequestFailure:
    answer = decoded(body)
    policy = str(answer.get("policyName") or "") if isinstance(answer, Mapping) else ""
    if wait is None and policy != "DAILY":
        interval = header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = int(interval) / 1000 if interval and interval.strip().isdigit() else None
    which = "daily" if policy == "DAILY" else "rate"
    return RequestFailure(True, wait, clip(f"HubSpot {which} limit reached (429: {said})"))


def _said(body: bytes) -> str:
    answer = decoded(body)
    if isinstance(answer, Mapping) and answer.get("message"):
        category = answer.get("category") or answer.get("errorType")
        return f"{category}: {answer['message']}" if category else str(answer["message"])
    return body[:200].decode(errors="replace").strip() or "no message"


# Inbound: webhooks v3 signatures.

V3_DECODED = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip
"""The URL-encoded characters HubSpot decodes in the URI before signing (v3)."""
_V3_ENCODED = re.compile("|".join(V3_DECODED), re.IGNORECASE)


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, method + URI + body + timestamp)), the URI decoded first."""
    uri = _V3_ENCODED.sub(lambda m: V3_DECODED[m.group(0).upper()], uri)
    source = method.upper().encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: datetime,
    window_s: float = 300,
) -> bool:
    """A request signed by HubSpot within ``window_s`` of ``now`` (either way; ms timestamps).
    ``uri`` is the full URL HubSpot called, scheme and query included."""
    if not timestamp.strip().isdigit():
        return False
    sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
    if abs((now - sent).total_seconds()) > window_s:
        return False
    expected = sign_v3(secret, method, uri, body, timestamp.strip())
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


# Inbound: contact property changes.

CONTACT_TYPE_ID = "0-1"
OWNER_PROPERTY = "hubspot_owner_id"


class InboundPayloadError(ValueError):
    """A webhook body that is not a list of HubSpot events."""


@dataclass(frozen=True)
class InboundOutcome:
    object_id: str
    event_id: str
    outcome: OutcomeKind
    reason: str | None
    occurred_at: datetime
    property: str
    value: str


@dataclass(frozen=True)
class OwnerChange:
    """A contact's owner changed in HubSpot (None: unassigned); not an outcome, but worth
    recording against the lead."""

    object_id: str
    event_id: str
    hubspot_owner_id: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class _Change:
    object_id: str
    event_id: str
    occurred_at: datetime
    property: str
    value: str
    source: str | None = None


def parse_events(body: bytes) -> list[Mapping[str, Any]]:
    """The webhook's events, their shape checked (raises ``InboundPayloadError``)."""
    events = decoded(body)
    if events is None and body.strip():
        raise InboundPayloadError("the body is not JSON")
    _changes(events)
    return list(events)


def inbound_outcomes(
    events: Sequence[Mapping[str, Any]],
    rules: Mapping[str, Mapping[str, InboundRule]],
    *,
    ignored_sources: Collection[str] = (),
) -> list[InboundOutcome]:
    """The outcomes the contact property changes mean, oldest first; other events, and changes
    made by one of ``ignored_sources`` (Leadflow's own upserts: ``API``), are ignored."""
    found = []
    for change in _changes(events):
        if change.source in ignored_sources:
            continue
        rule = _rule_for(rules.get(change.property) or {}, change.value)
        if rule is not None:
            found.append(
                InboundOutcome(
                    change.object_id,
                    change.event_id,
                    rule.outcome,
                    rule.reason,
                    change.occurred_at,
                    change.property,
                    change.value,
                )  # fmt: skip
            )
    return found


def _outcome(change: _Change, rule: InboundRule) -> InboundOutcome:
    return InboundOutcome(
        object_id=change.object_id,
        event_id=change.event_id,
        outcome=rule.outcome,
        reason=rule.reason,
        occurred_at=change.occurred_at,
        property=change.property,
        value=change.value,
    )


def owner_changes(
    events: Sequence[Mapping[str, Any]], *, ignored_sources: Collection[str] = ()
) -> list[OwnerChange]:
    return [
        OwnerChange(c.object_id, c.event_id, c.value or None, c.occurred_at)
        for c in _changes(events)
        if c.property == OWNER_PROPERTY and c.source not in ignored_sources
    ]


def _rule_for(values: Mapping[str, InboundRule], changed: str) -> InboundRule | None:
    if changed in values:
        return values[changed]
    folded = changed.casefold()
    return next((r for v, r in values.items() if v.casefold() == folded), None)


def _changes(events: object) -> list[_Change]:
    if not isinstance(events, list):
        raise InboundPayloadError("expected a JSON array of events")
    changes = [_change(index, event) for index, event in enumerate(events)]
    found = [c for c in changes if c is not None]
    return sorted(found, key=lambda c: (c.occurred_at, c.event_id))


def _change(index: int, event: object) -> _Change | None:
    if not isinstance(event, Mapping):
        raise InboundPayloadError(f"event {index}: expected an object")
    event_id = _id(index, event, "eventId")
    object_id = _id(index, event, "objectId")
    occurred = _id(index, event, "occurredAt")
    kind = event.get("subscriptionType")
    if not isinstance(kind, str):
        raise InboundPayloadError(f"event {index}: subscriptionType missing or not a string")
    contact = kind == "contact.propertyChange" or (
        kind == "object.propertyChange" and str(event.get("objectTypeId")) == CONTACT_TYPE_ID
    )
    if not contact:
        return None
    name, changed = event.get("propertyName"), event.get("propertyValue", "")
    if not isinstance(name, str) or not name:
        raise InboundPayloadError(f"event {index}: propertyName missing or not a string")
    if not isinstance(changed, str | int | float) or isinstance(changed, bool):
        raise InboundPayloadError(f"event {index}: propertyValue is not a string")
    at = datetime.fromtimestamp(int(occurred) / 1000, UTC)
    source = event.get("changeSource")
    return _Change(
        object_id, event_id, at, name, str(changed), source if isinstance(source, str) else None
    )


def _id(index: int, event: Mapping[str, Any], key: str) -> str:
    raw = event.get(key)
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise InboundPayloadError(f"event {index}: {key} missing or not a number")
    return str(raw)
