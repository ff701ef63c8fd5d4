"""Events: the CloudEvents envelope and every event type, registered on import.

Each area's event types live in a module of their own; import it here so ``decode`` knows them.
"""

from shared.events.engagement import (
    WRONG_OWNER_REASONS,
    LeadActivity,
    LeadActivityData,
    LeadOutcome,
    LeadOutcomeData,
)
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
from shared.events.lifecycle import (
    STAGE_EVENTS,
    LeadDisqualified,
    LeadMql,
    LeadRecycled,
    LeadSql,
    RulesetActivated,
    RulesetActivatedData,
    StageChangedData,
)
from shared.events.routing import (
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadRouted,
    LeadRoutedData,
    RoutingRulesActivated,
    RoutingRulesActivatedData,
)
from shared.events.sla import SlaEscalated, SlaEscalatedData
from shared.events.webhooks import (
    LeadErased,
    LeadErasedData,
    SubscriptionDisabled,
    SubscriptionDisabledData,
)

Event = CloudEvent

__all__ = [
    "WRONG_OWNER_REASONS",
    "LeadQueued",
    "LeadQueuedData",
    "LeadReassigned",
    "LeadReassignedData",
    "LeadRouted",
    "LeadRoutedData",
    "STAGE_EVENTS",
    "CloudEvent",
    "Event",
    "LeadActivity",
    "LeadActivityData",
    "LeadDisqualified",
    "LeadMql",
    "LeadOutcome",
    "LeadOutcomeData",
    "LeadRecycled",
    "LeadSql",
    "RoutingRulesActivated",
    "RoutingRulesActivatedData",
    "RulesetActivated",
    "RulesetActivatedData",
    "SlaEscalated",
    "SlaEscalatedData",
    "StageChangedData",
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
