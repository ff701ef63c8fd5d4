"""Events about a lead as it arrives and is scored."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register


class LeadReceivedData(Payload):
    lead_id: UUID
    inquiry_id: UUID
    source: str = Field(description="Where the inquiry came from, e.g. web, google-ads")
    new_lead: bool = Field(description="False when the inquiry attached to an existing lead")
    is_test: bool = Field(
        False, description="An ad platform's test lead: keep it out of funnel, SLA and routing"
    )


class LeadScoredData(Payload):
    lead_id: UUID
    score: int = Field(description="The fit score (who the lead is)")
    previous_score: int | None = None
    rules_fired: list[str] = Field(default_factory=list)
    fit_grade: str | None = Field(None, description="The fit grade, e.g. A-D")
    engagement_score: int | None = Field(None, description="What the lead did, after decay")
    stage: str | None = Field(None, description="The lifecycle stage after this scoring")


@register
class LeadReceived(CloudEvent):
    stream: ClassVar[Stream] = "intake"
    type: Literal["lead.received"] = "lead.received"
    data: LeadReceivedData


@register
class LeadScored(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.scored"] = "lead.scored"
    data: LeadScoredData
