"""The event envelope (CloudEvents 1.0, structured JSON), the registry of event types, decoding.

An event's ``stream`` names the topic it travels on (a ``TopicSettings`` property); its key is the
lead id, so one lead's events stay in one partition, in order.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, Union
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.config import TopicSettings
from shared.ids import new_id

Stream = Literal["intake", "lifecycle", "sla"]
"""Topic groups; each is a property of ``TopicSettings``."""


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CloudEvent(BaseModel):
    """CloudEvents 1.0 attributes; ``ruleset`` is the extension naming the ruleset that decided;
    ``traceparent`` and ``tracestate`` are the distributed tracing extension's (set by
    ``shared.tracing`` when tracing is on, absent otherwise)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    stream: ClassVar[Stream]

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(default_factory=new_id)
    source: str = Field(min_length=1, description="URI-reference of the emitting service")
    type: str
    subject: str | None = Field(None, description="The lead id")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    ruleset: str | None = Field(None, pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    # Not validated: a malformed trace context must not make the event undecodable (it would be
    # dead-lettered); one that does not parse is ignored where it is read (shared/tracing.py).
    traceparent: str | None = Field(
        None, description="W3C traceparent of the span that created the event (tracing on)"
    )
    tracestate: str | None = Field(None, description="W3C tracestate that goes with it, if any")
    data: Payload

    @property
    def key(self) -> str:
        return self.subject or str(self.id)

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def about_lead(
        cls, lead_id: UUID, data: Any, *, source: str, time: datetime, **extra: Any
    ) -> Self:
        return cls(source=source, subject=str(lead_id), time=time, data=data, **extra)


_registry: dict[str, type[CloudEvent]] = {}
_adapter: TypeAdapter[Any] | None = None


E = TypeVar("E", bound=CloudEvent)


def register(cls: type[E]) -> type[E]:
    """Make an event type known to ``decode`` and to the published JSON Schemas."""
    global _adapter
    event_type = cls.model_fields["type"].default
    if event_type in _registry and _registry[event_type] is not cls:
        raise ValueError(f"event type {event_type} registered twice")
    _registry[event_type] = cls
    _adapter = None
    return cls


def event_types() -> dict[str, type[CloudEvent]]:
    return dict(sorted(_registry.items()))


def _union() -> TypeAdapter[Any]:
    global _adapter
    if _adapter is None:
        members = tuple(_registry.values())
        # A union of the types registered at run time: no static type to check it against.
        union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
        _adapter = TypeAdapter(union)
    return _adapter


class UnknownEventType(Exception):
    """The message is a well-formed event of a type this version does not know: not ours to fail."""


class UndecodableEvent(Exception):
    """The message is not a valid Leadflow event; it belongs in the dead-letter topic."""


def decode(raw: bytes) -> CloudEvent:
    try:
        # The usual case in one pass (pydantic parses the JSON itself): 2.9 µs, not 4.3.
        return _union().validate_json(raw)
    except ValidationError:
        pass  # not a valid event of a known type: find out which, to say so precisely
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UndecodableEvent(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UndecodableEvent("not a JSON object")
    if document.get("type") not in _registry:
        if isinstance(document.get("type"), str) and document.get("specversion") == "1.0":
            raise UnknownEventType(document["type"])
        raise UndecodableEvent(f"not a known CloudEvent: type={document.get('type')!r}")
    try:
        return _union().validate_python(document)
    except ValidationError as error:
        raise UndecodableEvent(str(error)) from None


def topic_for(event: CloudEvent, topics: TopicSettings) -> str:
    return str(getattr(topics, event.stream))


EXAMPLES = Path(__file__).with_name("examples")
"""``<type>.json``: a real event of that type, as a test produced it, published with its schema."""


def example_of(event_type: str) -> dict[str, Any] | None:
    path = EXAMPLES / f"{event_type}.json"
    if not path.exists():
        return None
    example: dict[str, Any] = json.loads(path.read_text())
    return example


def json_schemas() -> dict[str, dict[str, Any]]:
    """Each event type's JSON Schema, keyed by its CloudEvents ``type``, with its example if it
    has one (``EXAMPLES``)."""
    schemas = {}
    for event_type, cls in event_types().items():
        schema = cls.model_json_schema(mode="serialization")
        example = example_of(event_type)
        if example is not None:
            schema["examples"] = [example]
        schemas[event_type] = schema
    return schemas


def write_json_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in json_schemas().items():
        path = folder / f"{event_type}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
