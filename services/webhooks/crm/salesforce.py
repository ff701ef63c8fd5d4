"""Salesforce: Leads upserted by external id in batches (pure).

Token: the OAuth 2.0 client credentials flow, ``POST {My Domain}/services/oauth2/token``; the
answer names the ``instance_url`` the API calls go to. A 401 ``INVALID_SESSION_ID`` means the
token expired: fetch a new one and send again once.

Upsert: ``PATCH {instance}/services/data/vXX.X/composite/sobjects/Lead/{external id field}``
with ``allOrNone: false`` and at most 200 records; the answer is 200 with one result per record,
in order (``success``, ``created``, ``id``, ``errors[{statusCode, message, fields}]``), or a 400
for a malformed request (developer.salesforce.com, "Upsert Records Using sObject Collections").
``Sforce-Auto-Assign: FALSE`` keeps the org's assignment rules from replacing the owner Leadflow
routed to, unless the subscription asks for them.

A Lead needs ``LastName`` and ``Company``; a lead without them (or whose consent keeps them
out) still goes, with the best stand-in: the first name or the email's local part, the company
domain, else ``[not provided]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from services.webhooks.crm.config import SalesforceConfig
from services.webhooks.crm.fields import owner_of, value
from services.webhooks.crm.records import (
    Batch,
    RecordResult,
    RequestFailure,
    clip,
    decoded,
    fail_all,
    failed,
    retry_after,
)

NOT_PROVIDED = "[not provided]"
LAST_NAME_CHARS, COMPANY_CHARS = 80, 255
RETRY_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",  # this record was fine; another failed
    }
)
"""Record errors that another try can clear; anything else (a bad value, a missing field, an
unknown owner) fails the same way again."""
SESSION_EXPIRED = "INVALID_SESSION_ID"


class TokenError(ValueError):
    """Salesforce's token answer is unusable (or it refused the client credentials)."""


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str
    issued_at: datetime | None = None


def token_request(config: SalesforceConfig, client_secret: str) -> tuple[str, dict[str, str]]:
    """The token URL and its form body (``application/x-www-form-urlencoded``)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": config.client_id,
        "client_secret": client_secret,
    }
    return f"{config.login_url}/services/oauth2/token", form


def parse_token(body: bytes) -> Token:
    answer = decoded(body)
    if not isinstance(answer, Mapping):
        raise TokenError("Salesforce's token answer is not a JSON object")
    if answer.get("error"):
        said = answer.get("error_description") or "no description"
        raise TokenError(clip(f"Salesforce refused the token request: {answer['error']}: {said}"))
    token, instance = answer.get("access_token"), answer.get("instance_url")
    if not isinstance(token, str) or not token:
        raise TokenError("Salesforce's token answer has no access_token")
    if not isinstance(instance, str) or not instance.startswith(("https://", "http://")):
        raise TokenError(f"Salesforce's token answer has no usable instance_url: {instance!r}")
    return Token(token, instance.rstrip("/"), _issued_at(answer.get("issued_at")))


def _issued_at(raw: object) -> datetime | None:
    """``issued_at`` is milliseconds since the epoch, as a string."""
    if isinstance(raw, int | str) and str(raw).isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    return None


def build_upsert(
    config: SalesforceConfig, instance_url: str, items: Sequence[tuple[UUID, Mapping[str, Any]]]
) -> Batch:
    """One upsert of the messages' Leads, keyed by the lead id in the external id field."""
    records: list[dict[str, Any]] = []
    included: list[UUID] = []
    skipped: dict[UUID, RecordResult] = {}
    notes: dict[UUID, str] = {}
    keys: dict[UUID, str] = {}
    for message, document in items:
        data = document.get("data")
        data = data if isinstance(data, Mapping) else {}
        lead = value(data, "lead_id")
        if lead is None:
            skipped[message] = failed("the event names no lead_id", retry=False)
        elif str(lead) in keys.values():
            again = f"lead {lead} is already in this batch: next batch"
            skipped[message] = failed(again, retry=True)
        elif len(records) >= config.batch_size:
            skipped[message] = failed("the batch is full: next batch", retry=True)
        else:
            record, note = _record(config, data, str(lead))
            records.append(record)
            included.append(message)
            keys[message] = str(lead)
            if note:
                notes[message] = note
    body = {"allOrNone": False, "records": records}
    url = _upsert_url(config, instance_url)
    return Batch("PATCH", url, body, _headers(config), included, skipped, notes, keys)


def _upsert_url(config: SalesforceConfig, instance_url: str) -> str:
    base = instance_url.rstrip("/")
    path = f"/services/data/{config.api_version}/composite/sobjects/{config.object}"
    return f"{base}{path}/{config.external_id_field}"


def _headers(config: SalesforceConfig) -> dict[str, str]:
    auto_assign = "TRUE" if config.assignment_rules else "FALSE"
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Sforce-Auto-Assign": auto_assign,
    }


def _record(
    config: SalesforceConfig, data: Mapping[str, Any], lead: str
) -> tuple[dict[str, Any], str | None]:
    record: dict[str, Any] = {"attributes": {"type": config.object}}
    for field, name in config.fields.items():
        found = value(data, field)
        if found is not None:
            record[name] = found
    record[config.external_id_field] = lead
    record["LastName"] = record.get("LastName") or _last_name(data)
    record["Company"] = record.get("Company") or _company(data)
    record["LastName"] = str(record["LastName"])[:LAST_NAME_CHARS]
    record["Company"] = str(record["Company"])[:COMPANY_CHARS]
    stage = value(data, "qualification.stage")
    if isinstance(stage, str) and config.statuses.get(stage):
        record["Status"] = config.statuses[stage]
    owner, note = _owner(config, data)
    if owner is not None:
        record["OwnerId"] = owner
    return record, note


def _last_name(data: Mapping[str, Any]) -> str:
    email = value(data, "contact.email")
    local = str(email).partition("@")[0] if email else None
    name = value(data, "contact.last_name") or value(data, "contact.first_name")
    return str(name or local or NOT_PROVIDED)


def _company(data: Mapping[str, Any]) -> str:
    return str(value(data, "company.name") or value(data, "company.domain") or NOT_PROVIDED)


def _owner(config: SalesforceConfig, data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The User (an owner) or the Queue (a team's queue) the Lead belongs to, or a note."""
    owner, who = owner_of(data, config.owners)
    if owner is not None:
        return owner, None
    if who is not None:
        return None, f"owner {who} has no Salesforce User id mapped: sent without OwnerId"
    team, team_id = value(data, "queue.team"), value(data, "queue.team_id")
    if team is None and team_id is None:
        return None, None
    keys = [str(k) for k in (team, team_id) if k is not None]
    queue = next((config.queues[k] for k in keys if k in config.queues), None)
    if queue is not None:
        return queue, None
    return None, f"team {team or team_id} has no Salesforce Queue id mapped: sent without OwnerId"


def parse_upsert(status: int, body: bytes, batch: Batch) -> dict[UUID, RecordResult]:
    """Each included message's result: Salesforce answers one result per record, in order."""
    answer = decoded(body)
    if status not in (200, 201) or not isinstance(answer, list):
        unread = f"Salesforce answered HTTP {status} without a readable result list"
        return fail_all(batch, RequestFailure(retry=True, wait_s=None, message=unread))
    results: dict[UUID, RecordResult] = {}
    for index, message in enumerate(batch.included):
        result = answer[index] if index < len(answer) else None
        results[message] = _result(result, batch.notes.get(message))
    return results


def _result(result: object, note: str | None) -> RecordResult:
    if not isinstance(result, Mapping):
        return failed("Salesforce's answer had no result for this record", retry=True, note=note)
    if result.get("success") is True and result.get("id"):
        created = result.get("created") if isinstance(result.get("created"), bool) else None
        return RecordResult(ok=True, record_id=str(result["id"]), note=note, created=created)
    errors = [e for e in result.get("errors") or [] if isinstance(e, Mapping)]
    codes = {str(e.get("statusCode")) for e in errors}
    text = "; ".join(_error_text(e) for e in errors) or "failed without an error"
    return failed(text, retry=bool(codes) and codes <= RETRY_CODES, note=note)


def _error_text(error: Mapping[str, Any]) -> str:
    fields = error.get("fields") or []
    where = f" ({', '.join(map(str, fields))})" if isinstance(fields, list) and fields else ""
    return f"{error.get('statusCode') or 'ERROR'}: {error.get('message') or 'no message'}{where}"


def session_expired(status: int, body: bytes) -> bool:
    """401 ``INVALID_SESSION_ID``: fetch a new token and send the same request once more."""
    return status == 401 and SESSION_EXPIRED in _codes(body)


def request_failed(
    status: int, headers: Mapping[str, str], body: bytes, *, now: datetime | None = None
) -> RequestFailure:
    """What a whole-request failure means. Refused credentials or permissions need a person,
    yet the messages stay on the retry schedule so deliveries resume once they are fixed."""
    said, codes = _said(body), _codes(body)
    wait = retry_after(headers, now)
    if status == 401:
        text = f"Salesforce refused the session (401: {said}) even with a new token"
        return RequestFailure(True, None, clip(f"{text}; check the connected app and its user"))
    if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        text = f"Salesforce API request limit reached (403: {said})"
        return RequestFailure(True, wait, clip(text))
    if status == 403:
        text = f"Salesforce refused access (403: {said}); the integration user needs"
        rights = " create and edit rights on the object and its fields"
        return RequestFailure(True, None, clip(text + rights))
    if status in (408, 429) or status >= 500:
        return RequestFailure(True, wait, clip(f"Salesforce unavailable ({status}: {said})"))
    return RequestFailure(False, None, clip(f"Salesforce refused the request ({status}: {said})"))


def _errors(body: bytes) -> list[Mapping[str, Any]]:
    answer = decoded(body)
    if isinstance(answer, Mapping):
        answer = [answer]
    return [e for e in answer if isinstance(e, Mapping)] if isinstance(answer, list) else []


def _codes(body: bytes) -> set[str]:
    return {str(e.get("errorCode")) for e in _errors(body) if e.get("errorCode")}


def _said(body: bytes) -> str:
    said = [f"{e.get('errorCode') or 'ERROR'}: {e.get('message')}" for e in _errors(body)]
    return "; ".join(said) or body[:200].decode(errors="replace").strip() or "no message"
