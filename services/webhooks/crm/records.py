"""What a CRM batch request is, and what became of each record in it (pure values)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from services.webhooks.schedule import retry_after_s

ERROR_CHARS = 500


@dataclass(frozen=True)
class RecordResult:
    """One message's record: taken (``ok``) or not, and whether sending it again can help."""

    ok: bool
    record_id: str | None = None
    error: str | None = None
    retry: bool = False
    note: str | None = None
    created: bool | None = None
    """True: the CRM made a new record; False: it updated one; None: it did not say."""


@dataclass(frozen=True)
class Batch:
    """One request to send as is, plus the authorization header the caller adds.

    ``included``: the messages in the request, in order. ``skipped``: messages that could not
    go in it (settle them with their result). ``keys``: each included message's record key as
    sent (HubSpot: the email; Salesforce: the external id), so the answer can be matched.
    """

    method: str
    url: str
    json: dict[str, Any]
    headers: dict[str, str]
    included: list[UUID]
    skipped: dict[UUID, RecordResult] = field(default_factory=dict)
    notes: dict[UUID, str] = field(default_factory=dict)
    keys: dict[UUID, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestFailure:
    """The whole request failed: every included message shares this fate."""

    retry: bool
    wait_s: float | None
    message: str


def clip(text: str, limit: int = ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failed(error: str, *, retry: bool, note: str | None = None) -> RecordResult:
    return RecordResult(ok=False, error=clip(error), retry=retry, note=note)


def fail_all(batch: Batch, failure: RequestFailure) -> dict[UUID, RecordResult]:
    """Every included message's result when the whole request failed."""
    return {
        message: failed(failure.message, retry=failure.retry, note=batch.notes.get(message))
        for message in batch.included
    }


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value whatever the case of its name (httpx.Headers or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def retry_after(headers: Mapping[str, str], now: datetime | None) -> float | None:
    """``Retry-After`` in seconds; an HTTP date counts only when ``now`` is given."""
    raw = (header(headers, "Retry-After") or "").strip()
    if raw.isdigit():
        return float(raw)
    return retry_after_s(raw, now) if raw and now is not None else None


def decoded(body: bytes) -> Any:
    """The JSON answer, or None when it is not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
