"""Local CRM-shaped servers on 127.0.0.1 for contract tests, and ``lead.qualified`` documents.

``HubSpotServer``: ``POST /crm/v3/objects/contacts/batch/upsert`` as HubSpot documents it (Bearer
private-app token; ``{"inputs": [{"idProperty", "id", "properties", "objectWriteTraceId"?}]}``,
1 to 100 inputs, string values; 200 with ``results``, or 207 with ``errors`` and ``numErrors`` when
a record is refused, each error naming its input by ``objectWriteTraceId`` (else by ``ids``)).
``SalesforceServer``: the client credentials token endpoint and ``PATCH
/services/data/vXX.X/composite/sobjects/Lead/<field>`` (one result per record, in order; a
malformed request is a 400; an expired token a 401 ``INVALID_SESSION_ID``).

Both are built on the project's test receiver (``tests/support/receiver.py``: asyncio streams,
every request recorded) and can be scripted to fail the next requests (429, 5xx). They validate
what they are sent strictly, so a request they take is one the real API takes in shape.
``sign_hubspot_v3``/``post_hubspot_webhook`` sign a webhook the way HubSpot documents it,
written apart from the code under test so the two check each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID, uuid4

import httpx
import orjson

from shared.events.handoff import LeadQualified, LeadQualifiedData
from tests.support.receiver import Received, Receiver, Reply

JSON = {"content-type": "application/json;charset=UTF-8"}


def _reply(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {**JSON, **(headers or {})}, orjson.dumps(body))


class _Server:
    """Start/stop and scripted failures shared by both servers."""

    def __init__(self) -> None:
        self.receiver = Receiver(self._answer)
        self.scripted: list[Reply] = []

    async def __aenter__(self) -> _Server:
        await self.receiver.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.receiver.stop()

    @property
    def base_url(self) -> str:
        return self.receiver.url("")

    @property
    def received(self) -> list[Received]:
        return self.receiver.received

    def fail_next(
        self, count: int = 1, status: int = 503, *, body: Any = None, headers: Any = None
    ) -> None:
        answer = body if body is not None else {"status": "error", "message": "unavailable"}
        self.scripted += [_reply(status, answer, headers) for _ in range(count)]

    def _answer(self, request: Received) -> Reply:
        raise NotImplementedError


# HubSpot


HUBSPOT_UPSERT = "/crm/v3/objects/contacts/batch/upsert"
INPUT_KEYS = frozenset({"idProperty", "id", "properties", "objectWriteTraceId"})


class HubSpotServer(_Server):
    """Contacts kept by email (ids assigned from 1001). ``known_properties``/``owners``: when
    given, any other property or ``hubspot_owner_id`` is refused (``VALIDATION_ERROR``).
    ``echo_trace``: put ``objectWriteTraceId`` in results too (HubSpot's example does not)."""

    def __init__(
        self,
        *,
        token: str = "pat-test-token",
        known_properties: Iterable[str] | None = None,
        owners: Iterable[str] | None = None,
        echo_trace: bool = False,
    ) -> None:
        super().__init__()
        self.token = token
        self.known = frozenset(known_properties) if known_properties is not None else None
        self.owners = frozenset(owners) if owners is not None else None
        self.echo_trace = echo_trace
        self.contacts: dict[str, dict[str, Any]] = {}
        self._next_id = 1001

    async def __aenter__(self) -> HubSpotServer:
        await super().__aenter__()
        return self

    def rate_limit_next(
        self,
        count: int = 1,
        *,
        retry_after: int | None = None,
        interval_ms: int = 10_000,
        policy: str = "TEN_SECONDLY_ROLLING",
    ) -> None:
        headers = {**_rate_headers(0, interval_ms)}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        body = {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid4()),
            "policyName": policy,
        }
        self.scripted += [_reply(429, body, headers) for _ in range(count)]

    @property
    def upserts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received if r.path == HUBSPOT_UPSERT]

    def _answer(self, request: Received) -> Reply:
        if request.method != "POST" or request.path != HUBSPOT_UPSERT:
            return _hubspot_error(404, "OBJECT_NOT_FOUND", f"no route for {request.path}")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _hubspot_error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication",
            )
        if self.scripted:
            return self.scripted.pop(0)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _hubspot_error(400, "VALIDATION_ERROR", "Invalid input JSON")
        if (problem := _upsert_problem(body)) is not None:
            return _hubspot_error(400, "VALIDATION_ERROR", problem)
        return self._upsert(body["inputs"])

    def _upsert(self, inputs: list[dict[str, Any]]) -> Reply:
        results, errors = [], []
        for item in inputs:
            refused = self._refused(item)
            if refused is not None:
                errors.append(refused)
            else:
                results.append(self._store(item))
        now = _iso(datetime.now(UTC))
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        answer |= {"startedAt": now, "completedAt": now}
        if errors:
            answer |= {"errors": errors, "numErrors": len(errors)}
        return _reply(207 if errors else 200, answer, _rate_headers(99, 10_000))

    def _refused(self, item: Mapping[str, Any]) -> dict[str, Any] | None:
        properties = item["properties"]
        invalid = []
        if self.known is not None:
            invalid += [
                _invalid(n, f'Property "{n}" does not exist', "PROPERTY_DOESNT_EXIST")
                for n in properties
                if n not in self.known
            ]
        owner = properties.get("hubspot_owner_id")
        if self.owners is not None and owner is not None and owner not in self.owners:
            invalid.append(
                _invalid("hubspot_owner_id", f"{owner} is not a valid owner id", "INVALID_OWNER_ID")
            )
        if not invalid:
            return None
        trace = item.get("objectWriteTraceId")
        context = {"objectWriteTraceId": [trace]} if trace else {"ids": [item["id"]]}
        message = "Property values were not valid: " + orjson.dumps(invalid).decode()
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": message,
            "context": context,
        }

    def _store(self, item: Mapping[str, Any]) -> dict[str, Any]:
        email = item["id"].strip().lower()
        now = _iso(datetime.now(UTC))
        contact = self.contacts.get(email)
        created = contact is None
        if contact is None:
            contact = {"id": str(self._next_id), "createdAt": now, "properties": {}}
            self._next_id += 1
            self.contacts[email] = contact
        contact["properties"] |= {**item["properties"], "email": email}
        contact["updatedAt"] = now
        properties = {**contact["properties"], "hs_object_id": contact["id"]}
        properties |= {"createdate": contact["createdAt"], "lastmodifieddate": now}
        result = {
            "id": contact["id"],
            "properties": properties,
            "createdAt": contact["createdAt"],
            "updatedAt": now,
            "archived": False,
            "new": created,
        }
        if self.echo_trace and item.get("objectWriteTraceId"):
            result["objectWriteTraceId"] = item["objectWriteTraceId"]
        return result


def _upsert_problem(body: Any) -> str | None:
    if not isinstance(body, dict) or set(body) != {"inputs"}:
        return "the body must be an object with exactly one key, inputs"
    inputs = body["inputs"]
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
        return "inputs must be a list of 1 to 100 inputs"
    for index, item in enumerate(inputs):
        if (problem := _input_problem(item)) is not None:
            return f"inputs[{index}]: {problem}"
    ids = [item["id"].strip().lower() for item in inputs]
    if len(set(ids)) != len(ids):
        return "Duplicate IDs found in batch input"
    traces = [item["objectWriteTraceId"] for item in inputs if "objectWriteTraceId" in item]
    if len(set(traces)) != len(traces):
        return "objectWriteTraceId values must be unique"
    return None


def _input_problem(item: Any) -> str | None:
    if not isinstance(item, dict) or not {"idProperty", "id", "properties"} <= set(item):
        return "idProperty, id and properties are required"
    if set(item) - INPUT_KEYS:
        return f"unknown keys {sorted(set(item) - INPUT_KEYS)}"
    if item["idProperty"] != "email" or not isinstance(item["id"], str) or "@" not in item["id"]:
        return "this server upserts contacts by idProperty email, id an email"
    if "objectWriteTraceId" in item and not isinstance(item["objectWriteTraceId"], str):
        return "objectWriteTraceId must be a string"
    properties = item["properties"]
    if not isinstance(properties, dict):
        return "properties must be an object"
    bad = [k for k, v in properties.items() if not isinstance(v, str)]
    return f"property values must be strings: {bad}" if bad else None


def _invalid(name: str, message: str, error: str) -> dict[str, Any]:
    return {
        "isValid": False,
        "message": message,
        "error": error,
        "name": name,
        "localizedErrorMessage": message,
        "portalId": 891936587,
    }


def _hubspot_error(status: int, category: str, message: str) -> Reply:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid4()),
        "category": category,
    }
    return _reply(status, body)


def _rate_headers(remaining: int, interval_ms: int) -> dict[str, str]:
    return {
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": str(remaining),
        "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms),
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


V3_DECODED = [
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
]


def sign_hubspot_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature, per its "Validating requests" page."""
    for encoded, plain in V3_DECODED:
        url = url.replace(encoded, plain).replace(encoded.lower(), plain)
    source = (method + url).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


async def post_hubspot_webhook(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    events: list[dict[str, Any]],
    *,
    timestamp_ms: int | None = None,
) -> httpx.Response:
    """POST ``events`` to ``url`` as HubSpot would: v3-signed, timestamped (now by default)."""
    body = orjson.dumps(events)
    timestamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": sign_hubspot_v3(secret, "POST", url, body, timestamp),
        "X-HubSpot-Signature-Version": "v3",
    }
    return await client.post(url, content=body, headers=headers)


def contact_change(
    object_id: int, name: str, changed: str, *, event_id: int, occurred_at_ms: int
) -> dict[str, Any]:
    """One ``contact.propertyChange`` event as HubSpot's webhooks send it."""
    return {
        "eventId": event_id,
        "subscriptionId": 234567,
        "portalId": 12345678,
        "appId": 987654,
        "occurredAt": occurred_at_ms,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": object_id,
        "propertyName": name,
        "propertyValue": changed,
        "changeSource": "CRM_UI",
        "sourceId": "userId:45678",
    }


# Salesforce


SF_UPSERT = re.compile(r"^/services/data/v[0-9]{2}\.[0-9]/composite/sobjects/(\w+)/(\w+)$")
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


class SalesforceServer(_Server):
    """An org with the client credentials flow enabled; Leads kept by external id. ``users``
    and ``queues``: when given, any other ``OwnerId`` is an ``INVALID_CROSS_REFERENCE_KEY``.
    ``known_fields``: when given, any other field makes the request a 400 ``INVALID_FIELD``."""

    def __init__(
        self,
        *,
        client_id: str = "3MVG9test",
        client_secret: str = "sf-test-secret",
        sobject: str = "Lead",
        external_id_field: str = "Leadflow_Id__c",
        users: Iterable[str] | None = None,
        queues: Iterable[str] = (),
        known_fields: Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.sobject, self.external_id_field = sobject, external_id_field
        self.owners = frozenset([*users, *queues]) if users is not None else None
        self.known = frozenset(known_fields) if known_fields is not None else None
        self.tokens: dict[str, bool] = {}
        self.locked: set[str] = set()
        self.leads: dict[str, dict[str, Any]] = {}
        self._next_id = 1

    async def __aenter__(self) -> SalesforceServer:
        await super().__aenter__()
        return self

    @property
    def tokens_issued(self) -> int:
        return len(self.tokens)

    @property
    def upserts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received if r.method == "PATCH"]

    def expire_tokens(self) -> None:
        self.tokens = dict.fromkeys(self.tokens, False)

    def lock_once(self, *external_ids: str) -> None:
        """The next upsert of these records fails with ``UNABLE_TO_LOCK_ROW``."""
        self.locked.update(external_ids)

    def _answer(self, request: Received) -> Reply:
        if request.method == "POST" and request.path == "/services/oauth2/token":
            return self._token(request)
        match = SF_UPSERT.match(request.path)
        if request.method != "PATCH" or match is None:
            return _reply(
                404,
                [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
            )
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not self.tokens.get(token):
            return _reply(401, SESSION_EXPIRED)
        if self.scripted:
            return self.scripted.pop(0)
        if match.group(1) != self.sobject or match.group(2) != self.external_id_field:
            return _sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _sf_error(400, "JSON_PARSER_ERROR", "Unexpected character in the body")
        if (problem := self._problem(body)) is not None:
            return _sf_error(400, *problem)
        return _reply(200, self._upsert(body["records"], body["allOrNone"]))

    def _token(self, request: Received) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return _reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return _reply(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        token = f"00D000000000001!{uuid4().hex}"
        self.tokens[token] = True
        issued = str(int(time.time() * 1000))
        return _reply(
            200,
            {
                "access_token": token,
                "signature": "c2lnbmF0dXJl",
                "scope": "api",
                "instance_url": self.base_url,
                "id": f"{self.base_url}/id/00D000000000001/005000000000001",
                "token_type": "Bearer",
                "issued_at": issued,
                "api_instance_url": self.base_url,
            },
        )

    def _problem(self, body: Any) -> tuple[str, str] | None:
        if not isinstance(body, dict) or set(body) != {"allOrNone", "records"}:
            return "JSON_PARSER_ERROR", "the body must have exactly allOrNone and records"
        if not isinstance(body["allOrNone"], bool):
            return "JSON_PARSER_ERROR", "allOrNone must be a boolean"
        records = body["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= 200:
            return "INVALID_BATCH_SIZE", "records must hold 1 to 200 records"
        for record in records:
            if (problem := self._record_problem(record)) is not None:
                return problem
        return None

    def _record_problem(self, record: Any) -> tuple[str, str] | None:
        if not isinstance(record, dict) or not isinstance(record.get("attributes"), dict):
            return "INVALID_TYPE", "each record needs an attributes map"
        if record["attributes"].get("type") != self.sobject:
            return "INVALID_TYPE", f"each record's attributes.type must be {self.sobject}"
        external = record.get(self.external_id_field)
        if not isinstance(external, str) or not external:
            return "MISSING_ARGUMENT", f"{self.external_id_field} not specified"
        if "Id" in record or "id" in record:
            return "INVALID_FIELD", "Don't set the id field; use the external ID field"
        fields = set(record) - {"attributes"}
        unknown = sorted(fields - self.known) if self.known is not None else []
        if unknown:
            return "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type Lead"
        return None

    def _upsert(self, records: list[dict[str, Any]], all_or_none: bool) -> list[dict[str, Any]]:
        keys = [r[self.external_id_field] for r in records]
        errors = [self._errors(r, keys.count(r[self.external_id_field]) > 1) for r in records]
        if all_or_none and any(errors):
            rolled = _sf_record_error(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid",
            )
            return [{"success": False, "errors": e or [rolled]} for e in errors]
        return [
            {"success": False, "errors": e} if e else self._store(r)
            for r, e in zip(records, errors, strict=True)
        ]

    def _errors(self, record: Mapping[str, Any], duplicate: bool) -> list[dict[str, Any]]:
        key = record[self.external_id_field]
        if duplicate:
            return [_sf_record_error("DUPLICATE_EXTERNAL_ID", "Duplicate external id specified")]
        if key in self.locked:
            self.locked.discard(key)
            text = "unable to obtain exclusive access to this record or 1 records"
            return [_sf_record_error("UNABLE_TO_LOCK_ROW", text)]
        stored = self.leads.get(key, {})
        missing = [f for f in ("LastName", "Company") if not {**stored, **record}.get(f)]
        if missing:
            text = f"Required fields are missing: [{', '.join(missing)}]"
            return [_sf_record_error("REQUIRED_FIELD_MISSING", text, missing)]
        owner = record.get("OwnerId")
        if self.owners is not None and owner is not None and owner not in self.owners:
            text = "invalid cross reference id"
            return [_sf_record_error("INVALID_CROSS_REFERENCE_KEY", text, ["OwnerId"])]
        return []

    def _store(self, record: Mapping[str, Any]) -> dict[str, Any]:
        key = record[self.external_id_field]
        created = key not in self.leads
        if created:
            self.leads[key] = {"Id": f"00Q{self._next_id:015d}"}
            self._next_id += 1
        self.leads[key] |= {k: v for k, v in record.items() if k != "attributes"}
        return {"id": self.leads[key]["Id"], "success": True, "errors": [], "created": created}


def _sf_error(status: int, code: str, message: str) -> Reply:
    return _reply(status, [{"message": message, "errorCode": code}])


def _sf_record_error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


# lead.qualified documents


def qualified_event(changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``lead.qualified`` CloudEvent document as a subscriber receives it (JSON-ready), its
    data checked by the event's model. ``changes``: dotted paths into ``data`` → a value; None
    removes the key, as the dispatcher does with personal fields the lead's consent keeps out."""
    lead, now = uuid4(), datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    data = _lead_data(lead, now)
    for path, replacement in (changes or {}).items():
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if replacement is None:
            node.pop(last, None)
        else:
            node[last] = replacement
    payload = LeadQualifiedData.model_validate(data)
    event = LeadQualified.about_lead(lead, payload, source="/leadflow/handoff", time=now)
    return dict(orjson.loads(event.encode()))


def _lead_data(lead: UUID, now: datetime) -> dict[str, Any]:
    team = uuid4()
    return {
        "lead_id": str(lead),
        "handoff": "qualified",
        "contact": {
            "email": f"ana.buyer.{lead.hex[:8]}@northwind.example",
            "phone": "+4930123456",
            "first_name": "Ana",
            "last_name": "Buyer",
            "title": "Head of Operations",
        },
        "company": {
            "name": "Northwind GmbH",
            "domain": "northwind.example",
            "country": "DE",
            "size": "51-200",
        },
        "attribution": {
            "source": "google-ads",
            "inquiry_source": "web",
            "inquiry_id": str(uuid4()),
            "received_at": now.isoformat(),
            "inquiries": 2,
            "utm": {"source": "google", "medium": "cpc", "campaign": "spring-launch"},
            "ad": {
                "platform": "google-ads",
                "platform_lead_id": "gl-77",
                "ids": {"campaign_id": "4411", "adgroup_id": "98"},
            },
            "landing_page": "https://northwind.example/demo",
        },
        "consent": {"flags": {"marketing": True}, "given_at": now.isoformat()},
        "qualification": {
            "stage": "mql",
            "cause": "rules",
            "score": 72,
            "fit_grade": "A",
            "engagement_score": 31,
            "rules": ["fit-a", "demo-request"],
            "reached_at": now.isoformat(),
        },
        "owner": {
            "id": str(uuid4()),
            "email": "rita.rep@example.com",
            "name": "Rita Rep",
            "team_id": str(team),
            "team": "EMEA",
        },
        "sla": {
            "policy": "mql-first-response",
            "clock": "first_response",
            "deadline": (now + timedelta(hours=1)).isoformat(),
            "target_s": 3600.0,
        },
        "custom": {"budget": "10k-50k", "seats": 40},
        "links": {
            "lead": f"https://leadflow.example/v1/leads/{lead}",
            "explanation": f"https://leadflow.example/v1/leads/{lead}/explanation",
            "routing": f"https://leadflow.example/v1/leads/{lead}/routing",
        },
    }
