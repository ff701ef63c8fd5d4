"""Ad-platform payloads to submissions, signatures, keys, retry arithmetic; outcome checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.intake.engagement.schemas import OutcomeIn, outcome_problems
from services.intake.platforms.mapping import (
    GOOGLE_FIELDS,
    META_FIELDS,
    SubmissionInvalid,
    find_google_key,
    google_answers,
    lenient_json_text,
    meta_answers,
    meta_signature_matches,
    retry_delay,
    submission_from,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"a": [1, 2,], "b": 3,}', {"a": [1, 2], "b": 3}),
        ('{"a": "x,}", "b": [",]",\n ],\n}', {"a": "x,}", "b": [",]"]}),
        ('{"a": "quote \\",]" ,}', {"a": 'quote ",]'}),
        ('{"a": 1}', {"a": 1}),
        ("[{},\t]", [{}]),
    ],
)
def test_trailing_commas_go_but_strings_stay(raw: str, expected: object) -> None:
    assert json.loads(lenient_json_text(raw)) == expected


def test_a_comma_that_is_not_trailing_is_kept() -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(lenient_json_text('{"a": 1,, "b": 2}'))


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"google_key": "k"}, ("k", "google_key")),
        ({"Google_key": "k"}, ("k", "Google_key")),
        ({"GOOGLE_KEY": "k"}, ("k", "GOOGLE_KEY")),
        ({"google_key": 5}, (None, "google_key")),
        ({}, (None, None)),
    ],
)
def test_google_key_spellings(body: dict, found: tuple) -> None:
    assert find_google_key(body) == found


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(SubmissionInvalid):
        find_google_key({"google_key": "a", "Google_key": "b"})


def _signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (_signature("s3cret", b'{"x":1}'), True),
        (_signature("s3cret", b'{"x":1}').upper().replace("SHA256=", "sha256="), True),
        (_signature("other", b'{"x":1}'), False),
        (_signature("s3cret", b'{"x": 1}'), False),
        ("sha1=" + _signature("s3cret", b'{"x":1}')[7:], False),
        ("sha256=", False),
        ("garbage", False),
    ],
)
def test_meta_signature_is_over_the_raw_body(header: str, ok: bool) -> None:
    assert meta_signature_matches("s3cret", b'{"x":1}', header) is ok


def _google(*columns: tuple[str | None, str | None, str]) -> list[dict]:
    return [
        {k: v for k, v in (("column_id", cid), ("column_name", name), ("string_value", value)) if v}
        for cid, name, value in columns
    ]


def test_google_columns_map_onto_the_lead_and_unknown_ones_are_kept() -> None:
    columns = _google(
        ("FULL_NAME", "Full Name", "Ada King Lovelace"),
        ("EMAIL", None, "Ada@Example.com"),
        ("PHONE_NUMBER", None, "+1-650-555-0123"),
        ("COMPANY_NAME", None, "Analytical Engines"),
        ("JOB_TITLE", None, "Countess"),
        ("CITY", None, "London"),
        ("Q_BUDGET", "What is your budget?", "10k"),
    )
    submission = submission_from(
        google_answers(columns), defaults=GOOGLE_FIELDS, overrides={}, source="google-ads"
    )
    assert (submission.first_name, submission.last_name) == ("Ada King", "Lovelace")
    assert submission.email == "ada@example.com"
    assert submission.phone == "+16505550123"
    assert (submission.company, submission.title) == ("Analytical Engines", "Countess")
    assert submission.custom["What is your budget?"] == "10k"
    assert submission.custom["city"] == "London"
    assert submission.source == "google-ads"


def test_form_mapping_overrides_the_default_and_can_ignore() -> None:
    columns = _google(
        ("WORK_EMAIL", None, "ada@work.example"),
        ("Q1", "Budget", "10k"),
        ("JOB_TITLE", None, "CTO"),
    )
    submission = submission_from(
        google_answers(columns),
        defaults=GOOGLE_FIELDS,
        overrides={"Budget": "custom.budget", "JOB_TITLE": "ignore"},
        source="google-ads",
    )
    assert submission.email == "ada@work.example"
    assert submission.custom == {"budget": "10k"}
    assert submission.title is None


def test_meta_field_data_maps_by_name() -> None:
    field_data = [
        {"name": "email", "values": ["grace@example.com"]},
        {"name": "full_name", "values": ["Grace Hopper"]},
        {"name": "phone_number", "values": ["+15550100"]},
        {"name": "which_products", "values": ["compilers", "cobol"]},
    ]
    submission = submission_from(
        meta_answers(field_data), defaults=META_FIELDS, overrides={}, source="meta"
    )
    assert (submission.email, submission.first_name, submission.last_name) == (
        "grace@example.com",
        "Grace",
        "Hopper",
    )
    assert submission.custom["which_products"] == "compilers, cobol"


@pytest.mark.parametrize(
    ("columns", "field"),
    [
        (_google(("FULL_NAME", None, "No Contact")), ""),
        (_google(("EMAIL", None, "not-an-email")), "email"),
    ],
)
def test_a_lead_that_cannot_be_a_submission_names_the_field(
    columns: list[dict], field: str
) -> None:
    with pytest.raises(SubmissionInvalid) as raised:
        submission_from(google_answers(columns), defaults=GOOGLE_FIELDS, overrides={}, source="g")
    assert raised.value.field == (field or "user_column_data")


def test_a_badly_filled_field_is_kept_as_custom_when_the_lead_is_still_reachable() -> None:
    columns = _google(("EMAIL", None, "not-an-email"), ("PHONE_NUMBER", None, "+44 20 7946 0958"))
    submission = submission_from(
        google_answers(columns), defaults=GOOGLE_FIELDS, overrides={}, source="google-ads"
    )
    assert submission.email is None and submission.phone == "+442079460958"
    assert submission.custom["email"] == "not-an-email"


def test_user_column_data_must_be_a_list() -> None:
    with pytest.raises(SubmissionInvalid) as raised:
        google_answers({"EMAIL": "x"})
    assert raised.value.field == "user_column_data"


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 30), (2, 120), (3, 600), (4, 600), (99, 600)]
)
def test_the_last_retry_wait_repeats_forever(attempts: int, seconds: float) -> None:
    assert retry_delay(attempts, [30, 120, 600]) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"outcome": "responded"}, []),
        ({"outcome": "rejected"}, ["reason"]),
        ({"outcome": "lost", "reason": "price", "amount": "10"}, []),
        ({"outcome": "opportunity"}, ["amount"]),
        ({"outcome": "booked", "amount": "12000.50", "currency": "EUR"}, []),
        ({"outcome": "won"}, ["amount"]),
        ({"outcome": "accepted", "amount": "5"}, ["amount"]),
        ({"outcome": "accepted", "currency": "EUR"}, ["currency"]),
        ({"outcome": "responded", "occurred_at": "2026-03-02T13:00:00Z"}, ["occurred_at"]),
    ],
)
def test_outcome_rules(body: dict, fields: list[str]) -> None:
    found = outcome_problems(OutcomeIn.model_validate(body), NOW)
    assert [field for field, _ in found] == fields


def test_amounts_are_exact_decimals() -> None:
    assert OutcomeIn.model_validate({"outcome": "won", "amount": "0.10"}).amount == Decimal("0.10")
