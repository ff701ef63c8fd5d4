"""Salesforce: the token request and answer, Lead upserts built from lead.qualified, and each
record's fate read from the sObject Collections answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from services.webhooks.crm import salesforce
from services.webhooks.crm.config import SalesforceConfig
from services.webhooks.crm.records import Batch, RecordResult
from tests.support.crm_servers import qualified_event

INSTANCE = "https://acme.my.salesforce.com"
USER, QUEUE = "0055e000001AbCdAAK", "00G5e000000XyZ1AAK"


def config(**settings: Any) -> SalesforceConfig:
    base = {
        "login_url": "https://acme.my.salesforce.com",
        "client_id": "3MVG9abc",
        "owners": {"rita.rep@example.com": USER},
        "queues": {"EMEA": QUEUE},
    }
    return SalesforceConfig(**{**base, **settings})


def build(*documents: dict[str, Any], **settings: Any) -> tuple[Batch, list[UUID]]:
    ids = [uuid4() for _ in documents]
    items = list(zip(ids, documents, strict=True))
    return salesforce.build_upsert(config(**settings), INSTANCE + "/", items), ids


def test_token_request() -> None:
    url, form = salesforce.token_request(config(), "s3cret")
    assert url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "3MVG9abc",
        "client_secret": "s3cret",
    }


def test_token_answer() -> None:
    answer = {
        "access_token": "00D!abc",
        "signature": "sig",
        "scope": "api",
        "instance_url": "https://acme.my.salesforce.com/",
        "id": "https://login.salesforce.com/id/00D/005",
        "token_type": "Bearer",
        "issued_at": "1772443800000",
    }
    token = salesforce.parse_token(orjson.dumps(answer))
    assert token == salesforce.Token("00D!abc", INSTANCE, datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    assert salesforce.parse_token(orjson.dumps({**answer, "issued_at": None})).issued_at is None


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"<html>", "not a JSON object"),
        (
            orjson.dumps(
                {"error": "invalid_client", "error_description": "invalid client credentials"}
            ),
            "invalid_client: invalid client credentials",
        ),
        (orjson.dumps({"instance_url": INSTANCE}), "no access_token"),
        (orjson.dumps({"access_token": "t"}), "no usable instance_url"),
        (orjson.dumps({"access_token": "t", "instance_url": "ftp://x"}), "no usable instance_url"),
    ],
)
def test_bad_token_answers_say_why(answer: bytes, says: str) -> None:
    with pytest.raises(salesforce.TokenError) as caught:
        salesforce.parse_token(answer)
    assert says in str(caught.value)


def test_a_lead_record_per_message_keyed_by_lead_id() -> None:
    event = qualified_event()
    batch, [message] = build(event, fields={"qualification.score": "Score__c"})
    assert batch.method == "PATCH"
    assert batch.url == (f"{INSTANCE}/services/data/v62.0/composite/sobjects/Lead/Leadflow_Id__c")
    assert batch.headers["Sforce-Auto-Assign"] == "FALSE"
    assert "Authorization" not in batch.headers
    data = event["data"]
    assert batch.json == {
        "allOrNone": False,
        "records": [
            {
                "attributes": {"type": "Lead"},
                "Leadflow_Id__c": data["lead_id"],
                "Email": data["contact"]["email"],
                "FirstName": "Ana",
                "LastName": "Buyer",
                "Phone": "+4930123456",
                "Title": "Head of Operations",
                "Company": "Northwind GmbH",
                "Country": "DE",
                "LeadSource": "google-ads",
                "Score__c": 72,
                "Status": "Open - Not Contacted",
                "OwnerId": USER,
            }
        ],
    }
    assert batch.included == [message] and batch.keys == {message: data["lead_id"]}


def test_settings_shape_the_request() -> None:
    batch, _ = build(
        qualified_event({"qualification.stage": "sql"}),
        api_version="v60.0",
        object="Prospect__c",
        external_id_field="Ext__c",
        assignment_rules=True,
    )
    assert batch.url.endswith("/services/data/v60.0/composite/sobjects/Prospect__c/Ext__c")
    record = batch.json["records"][0]
    assert record["attributes"] == {"type": "Prospect__c"} and "Ext__c" in record
    assert record["Status"] == "Working - Contacted"
    assert batch.headers["Sforce-Auto-Assign"] == "TRUE"


@pytest.mark.parametrize(
    ("changes", "last_name", "company"),
    [
        ({}, "Buyer", "Northwind GmbH"),
        ({"contact.last_name": None}, "Ana", "Northwind GmbH"),
        ({"contact.last_name": None, "contact.first_name": None}, "ana.buyer", "Northwind GmbH"),
        ({"contact": {}}, "[not provided]", "Northwind GmbH"),
        ({"company.name": None}, "Buyer", "northwind.example"),
        ({"company": {}}, "Buyer", "[not provided]"),
        ({"contact.last_name": "x" * 100}, "x" * 80, "Northwind GmbH"),
    ],
)
def test_last_name_and_company_are_always_filled(
    changes: dict[str, Any], last_name: str, company: str
) -> None:
    batch, _ = build(qualified_event(changes))
    record = batch.json["records"][0]
    assert record["LastName"].startswith(last_name) and len(record["LastName"]) <= 80
    assert record["Company"] == company


def test_owner_by_leadflow_user_id_and_an_unmapped_owner_noted() -> None:
    event = qualified_event({"owner.email": "new.rep@example.com"})
    batch, [message] = build(event)
    assert "OwnerId" not in batch.json["records"][0]
    assert batch.notes[message] == (
        "owner new.rep@example.com has no Salesforce User id mapped: sent without OwnerId"
    )
    batch, _ = build(event, owners={event["data"]["owner"]["id"]: USER})
    assert batch.json["records"][0]["OwnerId"] == USER


@pytest.mark.parametrize(
    ("queue", "owner", "note"),
    [
        ({"team": "EMEA"}, QUEUE, None),
        ({"team_id": "0b7c1a52-3f9e-4d5c-9a8e-2f1d3c4b5a69"}, QUEUE, None),
        ({"team": "APAC"}, None, "team APAC has no Salesforce Queue id mapped"),
        (None, None, None),
    ],
)
def test_a_queued_lead_goes_to_its_teams_queue(
    queue: dict[str, str] | None, owner: str | None, note: str | None
) -> None:
    queues = {"EMEA": QUEUE, "0b7c1a52-3f9e-4d5c-9a8e-2f1d3c4b5a69": QUEUE}
    batch, [message] = build(qualified_event({"owner": None, "queue": queue}), queues=queues)
    assert batch.json["records"][0].get("OwnerId") == owner
    assert (batch.notes.get(message) or "").startswith(note or "")
    assert (message in batch.notes) is (note is not None)


def test_unmapped_stage_leaves_status_alone() -> None:
    batch, _ = build(qualified_event({"qualification.stage": "sal"}), statuses={"mql": ""})
    assert "Status" not in batch.json["records"][0]
    batch, _ = build(qualified_event(), statuses={"mql": ""})
    assert "Status" not in batch.json["records"][0]


def test_duplicates_wait_and_a_full_batch_leaves_the_rest() -> None:
    event = qualified_event()
    batch, ids = build(event, event, qualified_event(), qualified_event(), batch_size=2)
    assert batch.included == [ids[0], ids[2]]
    assert batch.skipped[ids[1]].retry and "already in this batch" in (
        batch.skipped[ids[1]].error or ""
    )
    assert batch.skipped[ids[3]].retry and "full" in (batch.skipped[ids[3]].error or "")


def test_no_lead_id_cannot_be_sent() -> None:
    ids = [uuid4()]
    batch = salesforce.build_upsert(config(), INSTANCE, [(ids[0], {"data": {}})])
    assert batch.included == [] and batch.skipped[ids[0]].retry is False


# Reading the answer


def three() -> tuple[Batch, list[UUID]]:
    return build(
        qualified_event(), qualified_event({"owner.email": "x@example.com"}), qualified_event()
    )


def test_results_in_order_one_failure_keeps_the_others() -> None:
    batch, ids = three()
    answer = [
        {"id": "00Q000000000001AAA", "success": True, "errors": [], "created": True},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "INVALID_CROSS_REFERENCE_KEY",
                    "message": "invalid cross reference id",
                    "fields": ["OwnerId"],
                }
            ],
        },
        {"id": "00Q000000000003AAA", "success": True, "errors": [], "created": False},
    ]
    results = salesforce.parse_upsert(200, orjson.dumps(answer), batch)
    assert results[ids[0]] == RecordResult(ok=True, record_id="00Q000000000001AAA", created=True)
    assert results[ids[1]] == RecordResult(
        ok=False,
        error="INVALID_CROSS_REFERENCE_KEY: invalid cross reference id (OwnerId)",
        retry=False,
        note=batch.notes[ids[1]],
    )
    assert results[ids[2]].created is False


@pytest.mark.parametrize(
    ("codes", "retry"),
    [
        (["UNABLE_TO_LOCK_ROW"], True),
        (["REQUEST_LIMIT_EXCEEDED"], True),
        (["SERVER_UNAVAILABLE"], True),
        (["ALL_OR_NONE_OPERATION_ROLLED_BACK"], True),
        (["REQUIRED_FIELD_MISSING"], False),
        (["DUPLICATE_VALUE"], False),
        (["UNABLE_TO_LOCK_ROW", "FIELD_CUSTOM_VALIDATION_EXCEPTION"], False),
        ([], False),
    ],
)
def test_which_record_errors_are_retried(codes: list[str], retry: bool) -> None:
    batch, [message] = build(qualified_event())
    errors = [{"statusCode": c, "message": "m", "fields": []} for c in codes]
    answer = orjson.dumps([{"success": False, "errors": errors}])
    assert salesforce.parse_upsert(200, answer, batch)[message].retry is retry


def test_a_short_or_unreadable_answer_retries_what_it_lacks() -> None:
    batch, ids = three()
    short = orjson.dumps([{"id": "00Q1", "success": True, "errors": []}])
    results = salesforce.parse_upsert(200, short, batch)
    assert results[ids[0]].ok and results[ids[1]].retry and results[ids[2]].retry
    results = salesforce.parse_upsert(200, b"{}", batch)
    assert all(results[m].retry and not results[m].ok for m in ids)


NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
EXPIRED = orjson.dumps(
    [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
)


def test_session_expired() -> None:
    assert salesforce.session_expired(401, EXPIRED)
    assert not salesforce.session_expired(401, b"[]")
    assert not salesforce.session_expired(403, EXPIRED)
    assert not salesforce.session_expired(401, b"<html>")


def sf_errors(code: str, message: str = "m") -> bytes:
    return orjson.dumps([{"message": message, "errorCode": code}])


@pytest.mark.parametrize(
    ("status", "headers", "answer", "retry", "wait"),
    [
        (401, {}, EXPIRED, True, None),
        (403, {}, sf_errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), True, None),
        (403, {}, sf_errors("INSUFFICIENT_ACCESS"), True, None),
        (503, {"Retry-After": "20"}, sf_errors("SERVER_UNAVAILABLE"), True, 20.0),
        (500, {}, b"", True, None),
        (429, {"Retry-After": "5"}, b"", True, 5.0),
        (400, {}, sf_errors("JSON_PARSER_ERROR", "Unexpected character"), False, None),
        (404, {}, sf_errors("NOT_FOUND"), False, None),
    ],
)
def test_request_failures(
    status: int, headers: dict[str, str], answer: bytes, retry: bool, wait: float | None
) -> None:
    failure = salesforce.request_failed(status, headers, answer, now=NOW)
    assert (failure.retry, failure.wait_s) == (retry, wait)
    assert str(status) in failure.message


def test_failure_messages_carry_salesforces_words() -> None:
    message = salesforce.request_failed(400, {}, sf_errors("INVALID_FIELD", "No such column"))
    assert "INVALID_FIELD: No such column" in message.message
    assert (
        "request limit"
        in salesforce.request_failed(403, {}, sf_errors("REQUEST_LIMIT_EXCEEDED")).message
    )
