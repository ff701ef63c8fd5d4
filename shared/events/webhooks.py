"""Events of the webhook area: an endpoint disabled, and ``lead.erased`` (delivered to every
subscriber of lead events, whatever its filters)."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register


class SubscriptionDisabledData(Payload):
    subscription_id: UUID
    url: str = Field(description="The endpoint, as subscribed")
    reason: str = Field(description="Why: `gone` (it answered 410) or `failing` (for too long)")
    detail: str


class LeadErasedData(Payload):
    lead_id: UUID
    reason: str | None = Field(None, description="e.g. a data subject's erasure request")


@register
class SubscriptionDisabled(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["subscription.disabled"] = "subscription.disabled"
    data: SubscriptionDisabledData


@register
class LeadErased(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.erased"] = "lead.erased"
    data: LeadErasedData
