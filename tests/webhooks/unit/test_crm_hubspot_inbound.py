"""HubSpot's webhooks: v3 signatures (checked against a signer written from HubSpot's docs, not
our own) and contact property changes read as Leadflow outcomes or owner changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.webhooks.crm import hubspot
from services.webhooks.crm.config import HubSpotConfig
from tests.support.crm_servers import contact_change, sign_hubspot_v3

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URL = "https://leadflow.example/v1/crm/hubspot/4f2c/events"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
STAMP = str(int(NOW.timestamp() * 1000))
BODY = b'[{"eventId":1,"subscriptionType":"contact.propertyChange"}]'
RULES = HubSpotConfig().inbound


def signed(url: str = URL, body: bytes = BODY, stamp: str = STAMP) -> str:
    return sign_hubspot_v3(SECRET, "POST", url, body, stamp)


def verify(**changes: Any) -> bool:
    request: dict[str, Any] = {
        "secret": SECRET,
        "method": "POST",
        "uri": URL,
        "body": BODY,
        "timestamp": STAMP,
        "signature": signed(),
        "now": NOW,
    }
    return hubspot.verify_v3(**{**request, **changes})


def test_a_signed_request_verifies() -> None:
    assert verify()
    assert hubspot.sign_v3(SECRET, "POST", URL, BODY, STAMP) == signed()


@pytest.mark.parametrize(
    "changes",
    [
        {"body": BODY.replace(b"1", b"2")},
        {"uri": URL + "?x=1"},
        {"method": "PUT"},
        {"secret": "another"},
        {"timestamp": str(int(STAMP) + 1)},
        {"signature": signed()[:-2] + "A="},
        {"signature": ""},
        {"timestamp": "soon"},
    ],
)
def test_tampering_fails(changes: dict[str, Any]) -> None:
    assert not verify(**changes)


@pytest.mark.parametrize(
    ("offset_s", "valid"),
    [(-299, True), (299, True), (-301, False), (301, False), (-3600, False)],
)
def test_the_timestamp_window_holds_both_ways(offset_s: int, valid: bool) -> None:
    assert verify(now=NOW + timedelta(seconds=offset_s)) is valid


def test_a_narrower_window() -> None:
    assert not verify(now=NOW + timedelta(seconds=61), window_s=60)


def test_encoded_characters_of_the_uri_are_decoded_as_hubspot_does() -> None:
    sent = "https://leadflow.example/v1/hooks/a%3Ab%40c?next=%2Fx%2Cy&q=%20"
    plain = "https://leadflow.example/v1/hooks/a:b@c?next=/x,y&q=%20"
    signature = sign_hubspot_v3(SECRET, "POST", plain, BODY, STAMP)
    assert verify(uri=sent, signature=signature)
    assert verify(uri=sent.replace("%3A", "%3a"), signature=signature)  # hex in either case
    spaced = sign_hubspot_v3(SECRET, "POST", plain.replace("%20", " "), BODY, STAMP)
    assert not verify(uri=sent, signature=spaced)  # only the listed characters are decoded


# Property changes

AT = 1_772_443_800_000


def change(name: str, new: str, *, event_id: int = 1, object_id: int = 501, at: int = AT) -> Any:
    return contact_change(object_id, name, new, event_id=event_id, occurred_at_ms=at)


def test_mapped_changes_become_outcomes_oldest_first() -> None:
    events = [
        change("hs_lead_status", "UNQUALIFIED", event_id=7, at=AT + 5),
        change("lifecyclestage", "salesqualifiedlead", event_id=6, object_id=502),
        change("firstname", "Ana", event_id=8),
        change("hs_lead_status", "SOMETHING_ELSE", event_id=9),
    ]
    outcomes = hubspot.inbound_outcomes(events, RULES)
    assert [(o.event_id, o.object_id, o.outcome, o.reason) for o in outcomes] == [
        ("6", "502", "accepted", None),
        ("7", "501", "rejected", "unqualified"),
    ]
    assert outcomes[0].occurred_at == datetime.fromtimestamp(AT / 1000, UTC)
    assert (outcomes[1].property, outcomes[1].value) == ("hs_lead_status", "UNQUALIFIED")


@pytest.mark.parametrize(
    ("name", "new", "outcome", "reason"),
    [
        ("hs_lead_status", "CONNECTED", "responded", None),
        ("hs_lead_status", "attempted_to_contact", "responded", None),
        ("hs_lead_status", "BAD_TIMING", "rejected", "bad_timing"),
    ],
)
def test_default_rules(name: str, new: str, outcome: str, reason: str | None) -> None:
    [found] = hubspot.inbound_outcomes([change(name, new)], RULES)
    assert (found.outcome, found.reason) == (outcome, reason)


def test_owner_changes_are_not_outcomes() -> None:
    events = [change("hubspot_owner_id", "41629779"), change("hubspot_owner_id", "", event_id=2)]
    assert hubspot.inbound_outcomes(events, RULES) == []
    owners = hubspot.owner_changes(events)
    assert [(o.event_id, o.hubspot_owner_id) for o in owners] == [("1", "41629779"), ("2", None)]


def test_changes_leadflow_made_itself_are_not_heard_back() -> None:
    """Leadflow's own upsert sets lifecyclestage = salesqualifiedlead for an SQL: HubSpot reports
    that change as made through the API, and it must not come back as the rep's acceptance."""
    ours = {**change("lifecyclestage", "salesqualifiedlead"), "changeSource": "API"}
    owner = {**change("hubspot_owner_id", "41629779", event_id=2), "changeSource": "INTEGRATION"}
    rep = change("lifecyclestage", "salesqualifiedlead", event_id=3)  # CRM_UI: a person
    ignored = HubSpotConfig().ignored_sources
    found = hubspot.inbound_outcomes([ours, owner, rep], RULES, ignored_sources=ignored)
    assert [o.event_id for o in found] == ["3"]
    assert hubspot.owner_changes([ours, owner, rep], ignored_sources=ignored) == []
    assert len(hubspot.inbound_outcomes([ours, rep], RULES)) == 2  # nothing ignored unless asked


def test_other_subscription_types_are_ignored() -> None:
    sql = change("lifecyclestage", "salesqualifiedlead")
    events = [
        {"eventId": 3, "subscriptionType": "contact.creation", "objectId": 5, "occurredAt": AT},
        {**sql, "subscriptionType": "deal.propertyChange"},
        {**sql, "subscriptionType": "object.propertyChange", "objectTypeId": "0-1"},
    ]
    [found] = hubspot.inbound_outcomes(events, RULES)
    assert found.outcome == "accepted"


def test_parse_events_reads_the_body() -> None:
    events = [change("lifecyclestage", "customer")]
    assert hubspot.parse_events(orjson.dumps(events)) == events


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"not json", "not JSON"),
        (b"{}", "a JSON array"),
        (b"", "a JSON array"),
        (b"[1]", "event 0: expected an object"),
        (orjson.dumps([{"subscriptionType": "contact.creation"}]), "event 0: eventId"),
        (orjson.dumps([{**change("a", "b"), "objectId": "x"}]), "objectId"),
        (orjson.dumps([{**change("a", "b"), "occurredAt": None}]), "occurredAt"),
        (orjson.dumps([{**change("a", "b"), "subscriptionType": 5}]), "subscriptionType"),
        (orjson.dumps([change("a", "b"), {**change("a", "b"), "propertyName": ""}]), "event 1"),
        (orjson.dumps([{**change("a", "b"), "propertyValue": {"x": 1}}]), "propertyValue"),
    ],
)
def test_malformed_payloads_are_refused_clearly(payload: bytes, says: str) -> None:
    with pytest.raises(hubspot.InboundPayloadError) as caught:
        hubspot.parse_events(payload)
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)
