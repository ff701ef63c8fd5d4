"""Events: the CloudEvents envelope and every event type, registered on import.

Each area's event types live in a module of their own; import it here so ``decode`` knows them.
"""

from shared.events.envelope import (
    CloudEvent,
    Payload,
    Stream,
    UndecodableEvent,
    UnknownEventType,
    decode,
    event_types,
    json_schemas,
    register,
    topic_for,
    write_json_schemas,
)
from shared.events.leads import LeadReceived, LeadReceivedData, LeadScored, LeadScoredData
from shared.events.webhooks import (
    LeadErased,
    LeadErasedData,
    SubscriptionDisabled,
    SubscriptionDisabledData,
)

Event = CloudEvent

__all__ = [
    "CloudEvent",
    "Event",
    "LeadErased",
    "LeadErasedData",
    "LeadReceived",
    "LeadReceivedData",
    "LeadScored",
    "LeadScoredData",
    "Payload",
    "Stream",
    "SubscriptionDisabled",
    "SubscriptionDisabledData",
    "UndecodableEvent",
    "UnknownEventType",
    "decode",
    "event_types",
    "json_schemas",
    "register",
    "topic_for",
    "write_json_schemas",
]
