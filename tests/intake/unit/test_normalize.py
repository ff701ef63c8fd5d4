"""Normalisation and form parsing: pure, table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.forms.parsing import InputError, parse_form, parse_json
from services.intake.normalize import (
    company_domain,
    normalize_country,
    normalize_email,
    normalize_phone,
    unstorable_text,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("  Ada@Example.COM ", "ada@example.com"),
        ("ada@exämple.com", "ada@xn--exmple-cua.com"),
        ("ADA+tag@sub.example.co.uk", "ada+tag@sub.example.co.uk"),
    ],
)
def test_emails(given: str, expected: str) -> None:
    assert normalize_email(given) == expected


@pytest.mark.parametrize("given", ["not-an-email", "a@b", "a@@example.com", "@example.com"])
def test_bad_emails(given: str) -> None:
    with pytest.raises(ValueError, match="not an email"):
        normalize_email(given)


@pytest.mark.parametrize(
    ("given", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+1 415 555 2671", None, "+14155552671"),
    ],
)
def test_phones(given: str, region: str | None, expected: str) -> None:
    assert normalize_phone(given, region) == expected


@pytest.mark.parametrize(
    ("given", "region"), [("call me", "US"), ("415 555 2671", None), ("1", "US")]
)
def test_bad_phones(given: str, region: str | None) -> None:
    with pytest.raises(ValueError, match="phone number"):
        normalize_phone(given, region)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("US", "US"),
        ("usa", "US"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("Deutschland", "DE"),
        ("Atlantis", None),
        ("  ", None),
    ],
)
def test_countries(given: str, expected: str | None) -> None:
    assert normalize_country(given) == expected


@pytest.mark.parametrize(
    ("email", "website", "expected"),
    [
        ("ada@analytical.example", None, "analytical.example"),
        ("ada@gmail.com", None, None),
        ("ada@gmail.com", "https://www.Engines.example/about", "engines.example"),
        (None, "engines.example", "engines.example"),
        (None, "not a site", None),
    ],
)
def test_company_domain(email: str | None, website: str | None, expected: str | None) -> None:
    assert company_domain(email, website) == expected


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"a": "ok"}, None),
        ({"a": {"b": ["x", "y\x00"]}}, "a.b.1"),
        ({"k\x00": 1}, "k\x00"),
        ({"a": "\ud800"}, "a"),
    ],
)
def test_unstorable_text_is_found_by_path(payload: object, where: str | None) -> None:
    assert unstorable_text(payload) == where


def test_a_form_maps_known_fields_and_keeps_the_rest() -> None:
    parsed = parse_form(
        [
            ("key", "pk_1"),
            ("firstname", "Ada"),
            ("utm_source", "x"),
            ("consent_news", "off"),
            ("color", "red"),
            ("color", "blue"),
            ("_gotcha", " "),
        ],
        honeypot="_gotcha",
    )
    assert parsed.key == "pk_1" and parsed.honeypot is False
    assert parsed.data == {
        "first_name": "Ada",
        "utm": {"source": "x"},
        "consent": {"flags": {"consent_news": False}},
        "custom": {"color": ["red", "blue"]},
    }
    assert parsed.where(("first_name",)) == ("firstname",)


def test_utm_values_are_read_alike_from_a_form_and_from_hubspot() -> None:
    """The first non-blank value of each; a blank one is no source (it would count apart)."""
    pairs = [("utm_source", " "), ("utm_medium", "cpc"), ("utm_medium", "email")]
    form = parse_form([("utm_campaign", "q4"), *pairs], honeypot="_gotcha")
    fields = [{"name": n, "value": v} for n, v in [("utm_campaign", "q4"), *pairs]]
    hubspot = parse_json({"fields": fields}, honeypot="_gotcha")
    assert form.data["utm"] == hubspot.data["utm"] == {"campaign": "q4", "medium": "cpc"}


def test_json_bodies_tell_hubspot_apart_and_pop_the_honeypot() -> None:
    assert parse_json({"email": "a@b.co", "_gotcha": "bot"}, honeypot="_gotcha").honeypot
    hubspot = parse_json({"fields": [{"name": "email", "value": "a@b.co"}]}, honeypot="_gotcha")
    assert hubspot.format == "hubspot" and hubspot.data == {"email": "a@b.co"}
    with pytest.raises(InputError) as error:
        parse_json([1, 2], honeypot="_gotcha")
    assert error.value.field == "body"


_EMAIL_ALPHABET = "abcXYZ019._%+-@"


@given(
    st.text(alphabet=_EMAIL_ALPHABET, min_size=1, max_size=30).map(
        lambda s: s + st_domain_suffixes[len(s) % len(st_domain_suffixes)]
    )
)
@settings(max_examples=2000, deadline=None)
def test_the_fast_path_for_plain_emails_agrees_with_email_validator(address: str) -> None:
    """normalize_email skips email_validator for plain ASCII addresses: same answers."""
    from email_validator import EmailNotValidError, validate_email

    from services.intake.normalize import _is_plain

    if not _is_plain(address.lower()):
        return
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise AssertionError(f"fast path accepted {address!r}: {error}") from None
    assert normalize_email(address) == f"{checked.local_part}@{checked.ascii_domain}".lower()


st_domain_suffixes = ["@example.com", ".com", "@a.b.co", "@x-y.io", "@localhost.test", "", "@b.c"]


@pytest.mark.parametrize(
    "address",
    [
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a@-x.com",
        "a@x.test",
        "a@sub.localhost",
        "a@x.c",
        f"{'a' * 65}@example.com",
        "a@example",
        "a b@example.com",
        "a@00--0000.com",
        "a@xn--bcher-kva.example",
    ],
)
def test_the_fast_path_leaves_doubtful_addresses_to_email_validator(address: str) -> None:
    from services.intake.normalize import _is_plain

    assert not _is_plain(address)
