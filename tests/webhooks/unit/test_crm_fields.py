"""The Leadflow fields a CRM mapping may name: the catalogue, values, and mapping problems."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from services.webhooks.crm.fields import (
    FIELDS,
    Crm,
    is_field,
    mapping_problems,
    owner_of,
    value,
)
from shared.events.handoff import LeadQualifiedData
from tests.support.crm_servers import qualified_event

DATA = qualified_event()["data"]


def test_the_catalogue_follows_the_event_model() -> None:
    tops = {path.split(".")[0] for path in FIELDS} - {"team"}
    assert tops == set(LeadQualifiedData.model_fields)
    for path in ("contact.email", "company.size", "qualification.rules", "sla.deadline",
                 "links.lead", "owner.email", "queue.team", "lead_id"):  # fmt: skip
        assert path in FIELDS and FIELDS[path]
    assert "(joined with ;)" in FIELDS["qualification.rules"]
    assert "consent.communications" not in FIELDS  # a list of objects has no one value


@pytest.mark.parametrize(
    ("path", "known"),
    [
        ("custom.budget", True),
        ("custom.", False),
        ("attribution.utm.campaign", True),
        ("attribution.utm.gclid_x", True),
        ("attribution.ad.ids.campaign_id", True),
        ("consent.flags.marketing", True),
        ("contact.email", True),
        ("contact", False),
        ("utm.source", False),
        ("owner.phone", False),
        ("team", True),
    ],
)
def test_which_paths_are_fields(path: str, known: bool) -> None:
    assert is_field(path) is known


VALUES: list[tuple[str, object]] = [
    ("contact.email", DATA["contact"]["email"]),
    ("qualification.score", 72),
    ("qualification.rules", "fit-a;demo-request"),
    ("attribution.utm.campaign", "spring-launch"),
    ("attribution.ad.ids.campaign_id", "4411"),
    ("attribution.ad.ids.form_id", None),
    ("custom.seats", 40),
    ("company.is_expansion", None),
    ("is_test", False),
    ("sla.deadline", "2026-03-02T10:30:00Z"),
    ("team", "EMEA"),
    ("qualification.missing", None),
    ("nothing.here", None),
]


@pytest.mark.parametrize(("path", "expected"), VALUES, ids=[path for path, _ in VALUES])
def test_values(path: str, expected: object) -> None:
    assert value(DATA, path) == expected


def test_values_of_python_objects_and_odd_keys() -> None:
    data = {
        "sla": {"deadline": datetime(2026, 1, 2, 3, 4, tzinfo=UTC)},
        "lead_id": UUID(int=5),
        "custom": {"a.b": "dotted", "nested": {"z": 1, "a": [1, 2]}, "empty": "", "list": []},
    }
    assert value(data, "sla.deadline") == "2026-01-02T03:04:00+00:00"
    assert value(data, "lead_id") == "00000000-0000-0000-0000-000000000005"
    assert value(data, "custom.a.b") == "dotted"
    assert value(data, "custom.nested") == '{"a":[1,2],"z":1}'
    assert value(data, "custom.empty") is None
    assert value(data, "custom.list") is None


def test_a_lead_without_consent_has_no_personal_values() -> None:
    data = qualified_event({"contact": {}, "custom": {}})["data"]
    assert value(data, "contact.email") is None
    assert value(data, "custom.budget") is None


def test_team_falls_back_to_the_queue() -> None:
    data = qualified_event({"owner": None, "queue": {"team": "DACH"}})["data"]
    assert value(data, "team") == "DACH"


@pytest.mark.parametrize(
    ("mapping", "crm", "problems"),
    [
        ({"contact.email": "email", "custom.role": "job_role"}, "hubspot", []),
        (
            {"utm.sorce": "utm_source"},
            "hubspot",
            ["utm.sorce: not a Leadflow field (see GET /v1/subscriptions/crm-fields)"],
        ),
        ({"contact.title": ""}, "hubspot", ["contact.title: the CRM property name is empty"]),
        (
            {"contact.title": "JobTitle"},
            "hubspot",
            [
                "contact.title: 'JobTitle' is not a valid HubSpot property name (lowercase "
                "letters, digits and underscores, starting with a letter)"
            ],
        ),
        ({"contact.title": "Title", "custom.x": "ns__Thing__c"}, "salesforce", []),
        (
            {"contact.title": "Bad__Name__"},
            "salesforce",
            [
                "contact.title: 'Bad__Name__' is not a valid Salesforce field name (letters, "
                "digits and single underscores, optional __c)"
            ],
        ),
        (
            {"contact.title": "title", "owner.name": "title"},
            "hubspot",
            ["owner.name: title is already mapped from contact.title"],
        ),
        ({"contact.title": "Title", "owner.name": "owner_name"}, None, []),
    ],
)
def test_mapping_problems(mapping: dict[str, str], crm: Crm | None, problems: list[str]) -> None:
    assert mapping_problems(mapping, crm) == problems


def test_owner_is_found_by_email_then_by_id() -> None:
    owner = DATA["owner"]
    shouted = qualified_event({"owner.email": "Rita.Rep@Example.com"})["data"]
    assert owner_of(shouted, {"rita.rep@example.com": "7"}) == ("7", "Rita.Rep@Example.com")
    assert owner_of(DATA, {owner["id"]: "8"}) == ("8", owner["email"])
    assert owner_of(DATA, {}) == (None, owner["email"])
    queued = qualified_event({"owner": None, "queue": {"team": "EMEA"}})["data"]
    assert owner_of(queued, {"x@example.com": "9"}) == (None, None)
