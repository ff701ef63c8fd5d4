"""A JSON body read like a form: flat names placed, unknown fields kept in custom and named."""

from __future__ import annotations

from typing import Any

import pytest

from services.intake.forms.parsing import parse_form, parse_json

HONEYPOT = "_gotcha"


def json_body(**fields: Any) -> Any:
    return parse_json(fields, honeypot=HONEYPOT)


def test_a_form_snippets_flat_fields_are_placed_as_the_form_path_places_them() -> None:
    body = {
        "email": "ada@example.com",
        "name": "Ada King Lovelace",
        "utm_source": "newsletter",
        "utm_campaign": "spring",
        "message": "Call me",
        "consent_text": "I agree",
        "consent_marketing": "on",
        "jobtitle": "CTO",
    }
    parsed = json_body(**body)
    form = parse_form(list(body.items()), honeypot=HONEYPOT)
    assert parsed.data == form.data
    assert parsed.data["first_name"] == "Ada King" and parsed.data["last_name"] == "Lovelace"
    assert parsed.data["utm"] == {"source": "newsletter", "campaign": "spring"}
    assert parsed.data["consent"] == {"text": "I agree", "flags": {"consent_marketing": True}}
    assert parsed.data["title"] == "CTO"
    assert parsed.data["custom"] == {"message": "Call me"}
    assert parsed.kept_as_custom == ["message"]
    assert parsed.raw == body


def test_the_canonical_shape_wins_over_its_flat_twin_and_custom_merges() -> None:
    parsed = json_body(
        utm={"source": "ads"},
        utm_source="newsletter",
        utm_medium="email",
        custom={"team": "11-50"},
        team="ignored",
        comments="hello",
    )
    assert parsed.data["utm"] == {"source": "ads", "medium": "email"}
    assert parsed.data["custom"] == {"team": "11-50", "comments": "hello"}
    assert parsed.kept_as_custom == ["team", "comments"]


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        (42, 42),
        (True, True),
        (["a", 1], ["a", 1]),
        ({"nested": [1, {"x": 2}]}, '{"nested":[1,{"x":2}]}'),
        ([{"x": 1}], '[{"x":1}]'),
    ],
)
def test_an_unknown_field_of_any_json_type_is_kept(value: Any, kept: Any) -> None:
    parsed = json_body(email="a@example.com", extra=value)
    assert parsed.data["custom"] == {"extra": kept}


def test_known_fields_keep_their_values_for_validation_to_judge() -> None:
    parsed = json_body(email=12, phone=["x"], firstname=7, consent={"flags": {"a": True}})
    assert parsed.data["email"] == 12 and parsed.data["phone"] == ["x"]
    assert parsed.data["first_name"] == 7
    assert parsed.locations["first_name"] == "firstname"
    assert parsed.data["consent"] == {"flags": {"a": True}}
    assert parsed.kept_as_custom == []


def test_a_consent_checkbox_sent_as_a_boolean_is_a_flag() -> None:
    assert json_body(consent=True).data["consent"] == {"flags": {"consent": True}}
    assert json_body(consent="no").data["consent"] == {"flags": {"consent": False}}


def test_a_flat_fields_error_names_the_field_as_sent() -> None:
    parsed = json_body(utm_source="x", consent_text="t")
    assert parsed.where(("utm", "source")) == ("utm_source",)
    assert parsed.where(("consent", "text")) == ("consent_text",)
    assert parsed.where(("email",)) == ("email",)


def test_the_honeypot_is_not_kept_as_custom() -> None:
    parsed = json_body(email="a@example.com", _gotcha="bot")
    assert parsed.honeypot and "custom" not in parsed.data


def test_a_public_key_in_the_body_is_the_key_not_a_custom_field() -> None:
    parsed = json_body(email="a@example.com", key="pk_abc")
    assert parsed.key == "pk_abc"
    assert "key" not in parsed.raw and "custom" not in parsed.data
