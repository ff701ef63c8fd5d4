"""What intake hears back about a lead after the inquiry: engagement and CRM outcomes.

Scoring consumes both: an activity re-scores the lead (and can promote it); an outcome moves it
through the sales stages (accepted → SAL, then the SQL criteria; rejected → recycled…).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register

OutcomeKind = Literal["responded", "accepted", "rejected", "opportunity", "booked", "won", "lost"]
WRONG_OWNER_REASONS = frozenset(
    {"wrong_owner", "wrong_territory", "wrong_language", "wrong_segment", "not_mine", "conflict"}
)
"""Reasons of a rejection that mean "not for me" rather than "not a good lead": the lead is
reassigned (routing) and keeps its stage (scoring), instead of being recycled."""


class LeadActivityData(Payload):
    lead_id: UUID
    kind: str = Field(
        min_length=1, max_length=64, description="e.g. page_view, demo_request, webinar_attended"
    )
    occurred_at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)
    activity_id: UUID | None = Field(None, description="The stored activity (intake)")
    is_test: bool = Field(False, description="A platform test lead: skip in funnel/SLA/routing")


class LeadOutcomeData(Payload):
    lead_id: UUID
    outcome: OutcomeKind
    occurred_at: datetime
    reason: str | None = Field(None, max_length=64, description="Reason code (rejected, lost)")
    amount: float | None = Field(None, description="Opportunity or booking amount")
    crm: str | None = Field(None, max_length=64, description="Which CRM reported it")
    crm_id: str | None = Field(None, max_length=200, description="The CRM's id for the lead")
    currency: str | None = Field(None, description="ISO 4217 code of the amount")
    outcome_id: UUID | None = Field(None, description="The stored outcome (intake)")
    is_test: bool = Field(False, description="A platform test lead: skip in funnel/SLA/routing")


@register
class LeadActivity(CloudEvent):
    stream: ClassVar[Stream] = "intake"
    type: Literal["lead.activity"] = "lead.activity"
    data: LeadActivityData


@register
class LeadOutcome(CloudEvent):
    stream: ClassVar[Stream] = "intake"
    type: Literal["lead.outcome"] = "lead.outcome"
    data: LeadOutcomeData
