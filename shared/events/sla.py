"""Events of the SLA clocks: an owner let a lead's deadline pass and the lead is escalated.

The SLA monitor (services/sla_monitor, not built yet) will publish these on the SLA topic;
routing consumes them (services/routing/handlers.py) and moves the lead to someone else.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register


class SlaEscalatedData(Payload):
    lead_id: UUID
    owner_id: UUID | None = Field(
        None,
        description="The owner whose deadline passed; routing acts only if the lead still has "
        "this owner (a stale escalation changes nothing). None: whoever owns it now",
    )
    policy: str = Field(min_length=1, max_length=100, description="The SLA policy breached")
    reason: str = Field(
        "breached", min_length=1, max_length=200, description="Why, in a word or a few"
    )
    deadline: datetime | None = Field(None, description="When the owner had to act by")
    reassign: bool = Field(
        True, description="Move the lead to another owner; false: notify the manager only"
    )


@register
class SlaEscalated(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.escalated"] = "sla.escalated"
    data: SlaEscalatedData
