"""The event envelope (CloudEvents 1.0, structured JSON) and every event type Leadflow emits.

An event's ``stream`` names the topic it travels on (see ``TopicSettings``); its key is the lead id,
so one lead's events stay in one partition, in order.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.config import TopicSettings
from shared.ids import new_id

Stream = Literal["intake", "lifecycle"]


class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LeadReceivedData(Payload):
    lead_id: UUID
    inquiry_id: UUID
    source: str = Field(description="Where the inquiry came from, e.g. web, google-ads")
    new_lead: bool = Field(description="False when the inquiry attached to an existing lead")


class LeadScoredData(Payload):
    lead_id: UUID
    score: int
    previous_score: int | None = None
    rules_fired: list[str] = Field(default_factory=list)


class CloudEvent(BaseModel):
    """CloudEvents 1.0 attributes; ``ruleset`` is the extension naming the ruleset that decided."""

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


class LeadReceived(CloudEvent):
    stream: ClassVar[Stream] = "intake"
    type: Literal["lead.received"] = "lead.received"
    data: LeadReceivedData


class LeadScored(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.scored"] = "lead.scored"
    data: LeadScoredData


EVENT_TYPES: tuple[type[CloudEvent], ...] = (LeadReceived, LeadScored)
Event = Annotated[LeadReceived | LeadScored, Field(discriminator="type")]
_adapter: TypeAdapter[Event] = TypeAdapter(Event)
_known = {cls.model_fields["type"].default for cls in EVENT_TYPES}


class UnknownEventType(Exception):
    """The message is a well-formed event of a type this version does not know: not ours to fail."""


class UndecodableEvent(Exception):
    """The message is not a valid Leadflow event; it belongs in the dead-letter topic."""


def decode(raw: bytes) -> Event:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UndecodableEvent(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UndecodableEvent("not a JSON object")
    if document.get("type") not in _known:
        if isinstance(document.get("type"), str) and document.get("specversion") == "1.0":
            raise UnknownEventType(document["type"])
        raise UndecodableEvent(f"not a known CloudEvent: type={document.get('type')!r}")
    try:
        return _adapter.validate_python(document)
    except ValidationError as error:
        raise UndecodableEvent(str(error)) from None


def topic_for(event: CloudEvent, topics: TopicSettings) -> str:
    return topics.intake if event.stream == "intake" else topics.lifecycle


def json_schemas() -> dict[str, dict[str, Any]]:
    """Each event type's JSON Schema, keyed by its CloudEvents ``type``."""
    return {
        cls.model_fields["type"].default: cls.model_json_schema(mode="serialization")
        for cls in EVENT_TYPES
    }


def write_json_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in json_schemas().items():
        path = folder / f"{event_type}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
