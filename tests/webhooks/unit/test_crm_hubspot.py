"""HubSpot batch upserts: the request built from lead.qualified, and each record's fate read
from HubSpot's answer (200, 207 multi-status, whole-request failures)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from services.webhooks.crm import hubspot
from services.webhooks.crm.config import HubSpotConfig
from services.webhooks.crm.records import Batch, RecordResult, RequestFailure, fail_all
from tests.support.crm_servers import qualified_event

OWNERS = {"rita.rep@example.com": "41629779"}


def build(*documents: dict[str, Any], **settings: Any) -> tuple[Batch, list[UUID]]:
    config = HubSpotConfig(**{"owners": OWNERS, **settings})
    ids = [uuid4() for _ in documents]
    return hubspot.build_upsert(config, list(zip(ids, documents, strict=True))), ids


def test_one_input_per_contact_by_email_with_mapped_properties() -> None:
    event = qualified_event({"company.is_expansion": True})
    batch, [message] = build(
        event, properties={"qualification.score": "lead_score", "company.is_expansion": "expansion"}
    )
    assert (batch.method, batch.url) == ("POST", "https://api.hubapi.com" + hubspot.UPSERT_PATH)
    assert batch.headers == {"Content-Type": "application/json", "Accept": "application/json"}
    assert "Authorization" not in batch.headers
    [sent] = batch.json["inputs"]
    email = event["data"]["contact"]["email"]
    assert sent["idProperty"] == "email" and sent["id"] == email
    assert sent["objectWriteTraceId"] == str(message)
    assert sent["properties"] == {
        "email": email,
        "firstname": "Ana",
        "lastname": "Buyer",
        "phone": "+4930123456",
        "jobtitle": "Head of Operations",
        "company": "Northwind GmbH",
        "website": "northwind.example",
        "country": "DE",
        "lead_score": "72",
        "expansion": "true",
        "lifecyclestage": "marketingqualifiedlead",
        "hs_lead_status": "NEW",
        "hubspot_owner_id": "41629779",
    }
    assert batch.included == [message] and batch.keys == {message: email.lower()}
    assert batch.skipped == {} and batch.notes == {}


def test_values_are_strings_and_missing_ones_are_left_out() -> None:
    event = qualified_event({"contact.phone": None, "contact.title": None})
    batch, _ = build(event, properties={"qualification.rules": "rules", "sla.target_s": "target"})
    properties = batch.json["inputs"][0]["properties"]
    assert "phone" not in properties and "jobtitle" not in properties
    assert properties["rules"] == "fit-a;demo-request" and properties["target"] == "3600.0"
    assert all(isinstance(v, str) for v in properties.values())


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("sql", {"lifecyclestage": "salesqualifiedlead", "hs_lead_status": "OPEN"}),
        ("sal", {}),
    ],
)
def test_stage_properties(stage: str, expected: dict[str, str]) -> None:
    batch, _ = build(qualified_event({"qualification.stage": stage}))
    properties = batch.json["inputs"][0]["properties"]
    staged = {k: properties[k] for k in ("lifecyclestage", "hs_lead_status") if k in properties}
    assert staged == expected


def test_an_unmapped_owner_is_noted_and_the_contact_still_sent() -> None:
    event = qualified_event({"owner.email": "new.rep@example.com"})
    batch, [message] = build(event)
    assert "hubspot_owner_id" not in batch.json["inputs"][0]["properties"]
    assert batch.notes[message] == (
        "owner new.rep@example.com has no HubSpot owner id mapped: sent without hubspot_owner_id"
    )


def test_owner_mapped_by_leadflow_user_id() -> None:
    event = qualified_event({"owner.email": "other@example.com"})
    batch, _ = build(event, owners={event["data"]["owner"]["id"]: "77"})
    assert batch.json["inputs"][0]["properties"]["hubspot_owner_id"] == "77"


def test_a_queued_lead_gets_no_owner_and_no_note() -> None:
    batch, [message] = build(qualified_event({"owner": None, "queue": {"team": "EMEA"}}))
    assert "hubspot_owner_id" not in batch.json["inputs"][0]["properties"]
    assert message not in batch.notes


@pytest.mark.parametrize(
    "changes",
    [
        {"contact.email": None},  # consent kept it out
        {"contact.email": "  "},
        {"contact": {}},
    ],
)
def test_no_email_cannot_be_sent_and_is_not_retried(changes: dict[str, Any]) -> None:
    batch, [message] = build(qualified_event(changes))
    assert batch.included == [] and batch.json == {"inputs": []}
    assert batch.skipped[message].ok is False and batch.skipped[message].retry is False
    assert "no email" in (batch.skipped[message].error or "")


def test_a_second_message_for_one_email_waits_for_the_next_batch() -> None:
    first = qualified_event({"contact.email": "Same@Example.com"})
    second = qualified_event({"contact.email": "same@example.com"})
    batch, [one, two] = build(first, second)
    assert batch.included == [one] and len(batch.json["inputs"]) == 1
    assert batch.skipped[two].retry is True and "next batch" in (batch.skipped[two].error or "")


def test_a_full_batch_leaves_the_rest_for_the_next() -> None:
    batch, ids = build(*(qualified_event() for _ in range(3)), batch_size=2)
    assert batch.included == ids[:2] and batch.skipped[ids[2]].retry is True


# Reading the answer


def result(email: str, record: str, *, new: bool = True, **extra: Any) -> dict[str, Any]:
    return {"id": record, "properties": {"email": email}, "new": new, "archived": False, **extra}


def body(**answer: Any) -> bytes:
    return orjson.dumps({"status": "COMPLETE", **answer})


def three() -> tuple[Batch, list[UUID], list[str]]:
    events = [qualified_event() for _ in range(3)]
    batch, ids = build(*events)
    return batch, ids, [e["data"]["contact"]["email"] for e in events]


def test_200_every_record_taken_matched_by_email_in_any_order() -> None:
    batch, ids, emails = three()
    answer = body(
        results=[
            result(emails[2].upper(), "3"),
            result(emails[0], "1", new=False),
            result(emails[1], "2"),
        ]
    )
    results = hubspot.parse_upsert(200, answer, batch)
    assert results == {
        ids[0]: RecordResult(ok=True, record_id="1", created=False),
        ids[1]: RecordResult(ok=True, record_id="2", created=True),
        ids[2]: RecordResult(ok=True, record_id="3", created=True),
    }


def test_results_matched_by_trace_id_when_given() -> None:
    batch, ids, _ = three()
    answer = body(results=[{"id": str(n), "objectWriteTraceId": str(m)} for n, m in enumerate(ids)])
    results = hubspot.parse_upsert(200, answer, batch)
    assert [results[m].record_id for m in ids] == ["0", "1", "2"]


def test_207_one_refused_record_keeps_the_others() -> None:
    batch, ids, emails = three()
    said = 'Property values were not valid: [{"isValid":false,"name":"lead_score"}]'
    refusal = {
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": said,
        "context": {"objectWriteTraceId": [str(ids[1])]},
    }
    answer = body(
        results=[result(emails[0], "1"), result(emails[2], "3")], errors=[refusal], numErrors=1
    )
    results = hubspot.parse_upsert(207, answer, batch)
    assert results[ids[0]].ok and results[ids[2]].ok
    assert results[ids[1]] == RecordResult(
        ok=False,
        error="VALIDATION_ERROR: " + said,
        retry=False,
    )


def test_errors_matched_by_ids_context() -> None:
    batch, ids, emails = three()
    error = {"category": "CONFLICT", "message": "busy", "context": {"ids": [emails[0].upper()]}}
    answer = body(results=[result(emails[1], "2"), result(emails[2], "3")], errors=[error])
    results = hubspot.parse_upsert(207, answer, batch)
    assert results[ids[0]].retry is True and results[ids[0]].error == "CONFLICT: busy"


def test_an_error_naming_a_property_fails_the_records_that_sent_it() -> None:
    events = [qualified_event(), qualified_event({"qualification.score": None})]
    batch, ids = build(*events, properties={"qualification.score": "lead_score"})
    error = {
        "category": "VALIDATION_ERROR",
        "message": "bad",
        "errors": [{"message": "not a number", "in": "lead_score"}],
    }
    results = hubspot.parse_upsert(207, body(results=[], errors=[error]), batch)
    assert results[ids[0]].error == "VALIDATION_ERROR: bad" and not results[ids[0]].retry
    assert results[ids[1]].ok is False and results[ids[1]].retry is True  # not mentioned


def test_an_unattributable_error_fails_every_record_without_a_result() -> None:
    batch, ids, emails = three()
    error = {"status": "error", "category": "RATE_LIMITS", "message": "slow down"}
    answer = body(results=[result(emails[0], "1")], errors=[error], numErrors=1)
    results = hubspot.parse_upsert(207, answer, batch)
    assert results[ids[0]].ok
    for message in ids[1:]:
        assert results[message] == RecordResult(
            ok=False, error="RATE_LIMITS: slow down", retry=True
        )


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        ({"category": "VALIDATION_ERROR"}, False),
        ({"category": "OBJECT_NOT_FOUND"}, False),
        ({"category": "RATE_LIMITS"}, True),
        ({"category": "LOCKED"}, True),
        ({"category": "CONFLICT"}, True),
        ({"category": "INTERNAL_ERROR"}, True),
        ({"category": "SOMETHING", "status": "502"}, True),
        ({"category": "SOMETHING", "status": "error"}, False),
    ],
)
def test_which_record_errors_are_retried(error: dict[str, Any], retry: bool) -> None:
    batch, [message] = build(qualified_event())
    answer = body(results=[], errors=[{**error, "message": "m"}], numErrors=1)
    assert hubspot.parse_upsert(207, answer, batch)[message].retry is retry


def test_notes_travel_with_results() -> None:
    event = qualified_event({"owner.email": "new.rep@example.com"})
    batch, [message] = build(event)
    answer = body(results=[result(event["data"]["contact"]["email"], "9")])
    assert hubspot.parse_upsert(200, answer, batch)[message].note == batch.notes[message]


def test_a_record_the_answer_forgets_is_retried() -> None:
    batch, ids, emails = three()
    results = hubspot.parse_upsert(200, body(results=[result(emails[0], "1")]), batch)
    assert results[ids[1]].retry and results[ids[2]].retry and results[ids[0]].ok


@pytest.mark.parametrize(("status", "answer"), [(200, b"<html>"), (200, b"[]"), (500, b"{}")])
def test_an_unreadable_answer_retries_all(status: int, answer: bytes) -> None:
    batch, ids, _ = three()
    results = hubspot.parse_upsert(status, answer, batch)
    assert all(not results[m].ok and results[m].retry for m in ids)


def test_errors_are_clipped_to_500_characters() -> None:
    batch, [message] = build(qualified_event())
    answer = body(results=[], errors=[{"category": "VALIDATION_ERROR", "message": "x" * 900}])
    assert len(hubspot.parse_upsert(207, answer, batch)[message].error or "") == 500


# Whole-request failures

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "headers", "answer", "retry", "wait"),
    [
        (429, {"Retry-After": "7"}, {}, True, 7.0),
        (429, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, {}, True, 10.0),
        (429, {"retry-after": "3", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, {},
         True, 3.0),
        (429, {"Retry-After": "Mon, 02 Mar 2026 09:31:00 GMT"}, {}, True, 60.0),
        (429, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, {"policyName": "DAILY"},
         True, None),
        (429, {}, {}, True, None),
        (423, {}, {}, True, 2.0),
        (477, {"Retry-After": "3600"}, {}, True, 3600.0),
        (502, {}, {}, True, None),
        (503, {"Retry-After": "30"}, {}, True, 30.0),
        (401, {}, {"category": "INVALID_AUTHENTICATION", "message": "expired"}, True, None),
        (403, {}, {"category": "MISSING_SCOPES", "message": "no scope"}, True, None),
        (400, {}, {"category": "VALIDATION_ERROR", "message": "Duplicate IDs"}, False, None),
        (404, {}, {}, False, None),
    ],
)  # fmt: skip
def test_request_failures(
    status: int, headers: dict[str, str], answer: dict[str, Any], retry: bool, wait: float | None
) -> None:
    failure = hubspot.request_failed(status, headers, orjson.dumps(answer), now=NOW)
    assert (failure.retry, failure.wait_s) == (retry, wait)
    assert str(status) in failure.message and len(failure.message) <= 500


def test_failure_messages_say_what_to_do() -> None:
    answer = orjson.dumps({"category": "INVALID_AUTHENTICATION", "message": "token expired"})
    message = hubspot.request_failed(401, {}, answer).message
    assert "INVALID_AUTHENTICATION: token expired" in message and "valid token" in message
    assert "crm.objects.contacts.write" in hubspot.request_failed(403, {}, b"").message
    assert "daily" in hubspot.request_failed(429, {}, orjson.dumps({"policyName": "DAILY"})).message
    assert "Duplicate" in hubspot.request_failed(400, {}, b"Duplicate IDs found").message


def test_an_http_date_needs_now() -> None:
    headers = {"Retry-After": "Mon, 02 Mar 2026 09:31:00 GMT"}
    assert hubspot.request_failed(503, headers, b"").wait_s is None


def test_fail_all_gives_every_included_message_the_failure() -> None:
    batch, ids, _ = three()
    failure = RequestFailure(retry=True, wait_s=5, message="HubSpot unavailable (503)")
    assert fail_all(batch, failure) == {
        m: RecordResult(ok=False, error="HubSpot unavailable (503)", retry=True) for m in ids
    }
