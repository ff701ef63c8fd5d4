from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from shared.config import TopicSettings
from shared.events import (
    LeadReceived,
    LeadReceivedData,
    LeadScored,
    LeadScoredData,
    UndecodableEvent,
    UnknownEventType,
    decode,
    json_schemas,
    topic_for,
)

SCHEMAS = Path(__file__).parents[3] / "docs" / "schemas"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_received(**overrides: object) -> LeadReceived:
    lead_id = uuid4()
    data = LeadReceivedData(lead_id=lead_id, inquiry_id=uuid4(), source="web", new_lead=True)
    return LeadReceived.about_lead(lead_id, data, source="/leadflow/intake", time=NOW, **overrides)


def test_round_trip_keeps_every_attribute() -> None:
    event = make_received()
    assert decode(event.encode()) == event


def test_envelope_is_structured_cloudevents_json() -> None:
    document = json.loads(make_received().encode())
    assert document["specversion"] == "1.0"
    assert document["type"] == "lead.received"
    assert document["subject"] == document["data"]["lead_id"]
    assert document["time"].endswith("Z")
    assert document["datacontenttype"] == "application/json"
    assert "ruleset" not in document  # absent extensions are left out, not null


def test_decode_picks_the_type_from_the_discriminator() -> None:
    lead_id = uuid4()
    scored = LeadScored.about_lead(
        lead_id,
        LeadScoredData(lead_id=lead_id, score=35, rules_fired=["business-email"]),
        source="/leadflow/scoring",
        time=NOW,
        ruleset="placeholder-1",
    )
    decoded = decode(scored.encode())
    assert isinstance(decoded, LeadScored)
    assert decoded.ruleset == "placeholder-1"
    assert decoded.data.rules_fired == ["business-email"]


def test_an_unknown_type_is_not_a_poison_message() -> None:
    raw = json.dumps({"specversion": "1.0", "id": "x", "source": "/s", "type": "lead.future"})
    with pytest.raises(UnknownEventType):
        decode(raw.encode())


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "lead.received"}',
        b'{"specversion": "1.0", "type": 7}',
        b"",
    ],
)
def test_malformed_messages_are_undecodable(raw: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        decode(raw)


def test_a_known_type_with_a_bad_payload_is_undecodable() -> None:
    document = json.loads(make_received().encode())
    document["data"]["lead_id"] = "not-a-uuid"
    with pytest.raises(UndecodableEvent, match="lead_id"):
        decode(json.dumps(document).encode())


def test_events_travel_on_their_stream_topic() -> None:
    topics = TopicSettings(prefix="acme")
    assert topic_for(make_received(), topics) == "acme.intake"
    lead_id = uuid4()
    scored = LeadScored.about_lead(
        lead_id, LeadScoredData(lead_id=lead_id, score=1), source="/s", time=NOW
    )
    assert topic_for(scored, topics) == "acme.lifecycle"


def test_published_json_schemas_match_the_models() -> None:
    """Fails when an event model changes without `make schemas` (docs/schemas drifted)."""
    generated = json_schemas()
    published = {path.stem: json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")}
    assert published == generated


def test_the_ruleset_extension_follows_cloudevents_naming() -> None:
    with pytest.raises(ValueError):
        make_received(ruleset="has spaces")
