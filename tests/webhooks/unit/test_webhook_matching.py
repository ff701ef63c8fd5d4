"""Which subscriptions get an event, what of it they see, and the CEL filter."""

from __future__ import annotations

import pytest

from services.webhooks import filters
from services.webhooks.matching import is_valid_pattern, outbound, receives, without_unconsented


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["lead.mql"], "lead.mql", True),
        (["lead.mql"], "lead.sql", False),
        (["lead.*"], "lead.routed", True),
        (["lead.*"], "leads.x", False),
        (["sla.*"], "sla.breached", True),
        (["sla.*"], "lead.mql", False),
        (["*"], "subscription.disabled", True),
        (["lead.mql", "sla.*"], "sla.warning", True),
        # lead.erased reaches every subscriber of any lead event, whatever it listed
        (["lead.mql"], "lead.erased", True),
        (["lead.*"], "lead.erased", True),
        (["*"], "lead.erased", True),
        (["sla.*"], "lead.erased", False),
    ],
)
def test_subscriptions_receive_what_their_patterns_name(
    patterns: list[str], event_type: str, expected: bool
) -> None:
    assert receives(patterns, event_type) is expected


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("lead.mql", True),
        ("sla.*", True),
        ("*", True),
        ("lead.*.x", False),
        ("Lead.MQL", False),
        ("lead.", False),
        ("", False),
        ("lead mql", False),
    ],
)
def test_patterns_are_validated(pattern: str, valid: bool) -> None:
    assert is_valid_pattern(pattern) is valid


PERSONAL = ["email", "phone", "first_name"]
GRANTS = ["contact", "communication:42"]
DATA = {"lead_id": "L", "email": "a@b.c", "phone": "+1", "first_name": "Ada", "score": 80}
EVERYTHING = {"lead_id", "score", "email", "phone", "first_name", "consent"}


@pytest.mark.parametrize(
    ("consent", "kept"),
    [
        (None, {"lead_id", "score"}),
        ({"flags": {"contact": False}}, {"lead_id", "score", "consent"}),
        ({"flags": {"contact": True}}, EVERYTHING),
        ({"flags": {"marketing": True}}, {"lead_id", "score", "consent"}),
        ({"flags": {"contact": "yes"}}, {"lead_id", "score", "consent"}),
        ({"flags": "contact"}, {"lead_id", "score", "consent"}),
        ({"communications": [{"value": True, "subscription_type_id": 42}]}, EVERYTHING),
        (
            {"communications": [{"value": False, "subscription_type_id": 42}]},
            {"lead_id", "score", "consent"},
        ),
        (
            {"communications": [{"value": True, "subscription_type_id": 7}]},
            {"lead_id", "score", "consent"},
        ),
        ({"share": True}, {"lead_id", "score", "consent"}),
    ],
)
def test_personal_fields_leave_only_with_consent_to_a_flag_the_subscriber_asks_for(
    consent: dict | None, kept: set[str]
) -> None:
    data = dict(DATA) if consent is None else {**DATA, "consent": consent}
    assert set(without_unconsented(data, PERSONAL, GRANTS)) == kept


def test_a_subscriber_asking_for_another_flag_gets_nothing_personal() -> None:
    data = {**DATA, "consent": {"flags": {"contact": True}}}
    assert set(without_unconsented(data, PERSONAL, ["marketing"])) == {
        "lead_id",
        "score",
        "consent",
    }
    assert set(without_unconsented(data, PERSONAL, [])) == {"lead_id", "score", "consent"}


def test_nested_personal_fields_are_removed_and_the_envelope_is_untouched() -> None:
    event = {
        "id": "e",
        "type": "lead.mql",
        "subject": "L",
        "data": {"lead": {"email": "a@b.c", "company": "Acme"}, "contacts": [{"phone": "+1"}]},
    }
    body = outbound(event, PERSONAL, GRANTS)
    assert body["data"] == {"lead": {"company": "Acme"}, "contacts": [{}]}
    assert {k: body[k] for k in ("id", "type", "subject")} == {
        "id": "e",
        "type": "lead.mql",
        "subject": "L",
    }
    assert event["data"]["lead"]["email"] == "a@b.c"  # the original is not changed


def test_the_owner_is_not_the_lead_and_keeps_their_email() -> None:
    data = {
        "contact": {"email": "lead@corp.example", "title": "CTO"},
        "owner": {"email": "ana@example.com", "name": "Ana"},
        "consent": {"flags": {"marketing": True}},
    }
    shown = without_unconsented(data, ["email", "title"], GRANTS)
    assert shown["contact"] == {}
    assert shown["owner"] == {"email": "ana@example.com", "name": "Ana"}


EVENT = {"type": "lead.mql", "subject": "L", "data": {"segment": "enterprise", "score": 80}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (None, True),
        ("", True),
        ('data.segment == "enterprise"', True),
        ('data.segment == "smb"', False),
        ("data.score >= 50 && type == 'lead.mql'", True),
        ("data.missing == 1", False),  # unevaluable: no match, no error
        ("data.score", False),  # not a boolean: no match
    ],
)
def test_cel_filters_select_events(expression: str | None, expected: bool) -> None:
    assert filters.passes(expression, EVENT) is expected


def test_an_invalid_filter_is_refused() -> None:
    with pytest.raises(filters.InvalidFilter):
        filters.validate("data.segment ==")
