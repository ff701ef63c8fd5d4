"""Events of routing: a lead given an owner, waiting in a queue, or moved to another owner.

Each carries the why: the rule that matched, every rep considered and why each was skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register

Trigger = Literal["qualified", "requested", "sla_escalation", "rejected", "queue"]


class CandidateData(Payload):
    rep_id: UUID
    name: str
    status: Literal["chosen", "eligible", "skipped"]
    reason: str | None = Field(
        None,
        description="Why skipped: deactivated, away, excluded, outside_hours, at_capacity, "
        "daily_cap, role, segment, territory, language, product, account_owner_…",
    )


class _Routing(Payload):
    lead_id: UUID
    trigger: Trigger = Field(description="What asked for routing")
    rule: str = Field(description="The routing rule that matched (account_match, default_queue…)")
    ruleset_version: int | None = Field(None, description="Routing ruleset version; None: built-in")
    team_id: UUID | None = None
    team: str | None = None
    is_expansion: bool = Field(description="The lead's company is an existing customer account")
    account_id: UUID | None = None
    reason: str = Field(description="The decision in words")
    candidates: list[CandidateData] = Field(default_factory=list)


class LeadRoutedData(_Routing):
    owner_id: UUID
    owner_email: str
    strategy: str | None = Field(
        None, description="round_robin, least_loaded, capacity; None: account owner"
    )
    available_at: datetime | None = Field(
        None, description="Held for the owner: their working hours start then (SLA starts then)"
    )


class LeadQueuedData(_Routing):
    pass


class LeadReassignedData(_Routing):
    previous_owner_id: UUID | None
    owner_id: UUID | None = Field(description="None: the lead now waits in the team's queue")
    owner_email: str | None = None
    why: str = Field(description="Why it was reassigned (the request's reason, rejection reason…)")
    available_at: datetime | None = None


@register
class LeadRouted(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.routed"] = "lead.routed"
    data: LeadRoutedData


@register
class LeadQueued(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.queued"] = "lead.queued"
    data: LeadQueuedData


@register
class LeadReassigned(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.reassigned"] = "lead.reassigned"
    data: LeadReassignedData


class RoutingRulesActivatedData(Payload):
    version: int = Field(description="The routing rules version now live (as in lead.routed)")
    content_hash: str = Field(description="SHA-256 of the rules file, as both sides signed it")
    previous: int | None = Field(None, description="The version it replaces; None: built-in")
    activated_by: str
    approvers: dict[str, str] = Field(description="Side (marketing, sales) → who approved")


@register
class RoutingRulesActivated(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["routing_rules.activated"] = "routing_rules.activated"
    data: RoutingRulesActivatedData
