"""The published example of ``lead.qualified`` (a real event, captured by
tests/handoff/integration/test_handoff.py, which also checks that what is emitted keeps its
shape) is a valid event, and the published JSON Schema carries it."""

from __future__ import annotations

import json

from shared.events import LeadQualified, LeadQualifiedData, decode, json_schemas
from shared.events.envelope import EXAMPLES

EXAMPLE = EXAMPLES / "lead.qualified.json"


def test_the_example_is_a_valid_event_that_loses_nothing() -> None:
    example = json.loads(EXAMPLE.read_text())
    event = decode(EXAMPLE.read_bytes())
    assert isinstance(event, LeadQualified) and isinstance(event.data, LeadQualifiedData)
    assert json.loads(event.encode()) == example


def test_the_schema_of_each_event_type_with_an_example_carries_it() -> None:
    schemas = json_schemas()
    with_examples = {path.stem for path in EXAMPLES.glob("*.json")}
    assert "lead.qualified" in with_examples
    for event_type, schema in schemas.items():
        if event_type in with_examples:
            example = json.loads((EXAMPLES / f"{event_type}.json").read_text())
            assert schema["examples"] == [example]
        else:
            assert "examples" not in schema
