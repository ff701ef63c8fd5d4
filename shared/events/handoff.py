"""The handoff: ``lead.qualified``, one event a CRM can act on alone.

Emitted when a lead stands in a stage that hands it to sales (MQL and SQL by default) with an
owner or in a team's queue, and again whenever that changes (a later handoff stage, another
owner). It carries the whole lead as sales needs it: contact, company, where it came from, the
consent as given, why it qualified, who owns it and by when they must answer.

The lead's personal fields sit under ``contact`` and ``custom``; the webhook dispatcher leaves
them out for a subscriber the lead's consent does not cover (docs/webhooks.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

import orjson
from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register

Handoff = Literal["qualified", "promoted", "reassigned"]


class HandoffContact(Payload):
    email: str | None = None
    phone: str | None = Field(None, description="E.164")
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = Field(None, description="Job title, as the latest inquiry gave it")


class HandoffCompany(Payload):
    name: str | None = None
    domain: str | None = None
    country: str | None = Field(None, description="ISO 3166-1 alpha-2")
    size: str | None = Field(None, description="Employees, as the form gave it (e.g. 11-50)")
    account_id: UUID | None = Field(None, description="The matched customer account, if any")
    is_expansion: bool | None = Field(
        None, description="True: an existing customer (expansion); False: net-new; None: unknown"
    )


class HandoffAd(Payload):
    platform: str = Field(description="google-ads or meta")
    platform_lead_id: str
    ids: dict[str, str] = Field(
        default_factory=dict,
        description="The platform's ids: campaign_id, adgroup_id, creative_id, form_id, gcl_id "
        "(Google); page_id, form_id, ad_id, adgroup_id (Meta)",
    )


class HandoffAttribution(Payload):
    source: str = Field(description="Where the lead first came from, e.g. web, google-ads")
    inquiry_source: str = Field(description="Where the latest inquiry came from")
    inquiry_id: UUID = Field(description="The latest inquiry")
    received_at: datetime = Field(description="When the latest inquiry arrived")
    inquiries: int = Field(ge=1, description="Inquiries of this lead so far")
    utm: dict[str, str] = Field(
        default_factory=dict, description="source, medium, campaign, term, content as given"
    )
    ad: HandoffAd | None = None
    landing_page: str | None = None
    referrer: str | None = None


class HandoffCommunication(Payload):
    value: bool
    subscription_type_id: int | str | None = None
    text: str | None = None


class HandoffConsent(Payload):
    """Consent exactly as the latest inquiry gave it."""

    text: str | None = Field(None, description="The consent wording shown")
    flags: dict[str, bool] = Field(default_factory=dict, description="Each checkbox's answer")
    communications: list[HandoffCommunication] = Field(default_factory=list)
    given_at: datetime = Field(description="When the inquiry that gave it arrived")


class HandoffQualification(Payload):
    stage: str = Field(description="mql, sql…: the stage that hands the lead over")
    cause: Literal["rules", "outcome"] = Field(description="Rules fired, or a CRM outcome")
    reason: str | None = Field(None, description="The outcome's reason code, if any")
    reached_at: datetime | None = Field(None, description="When the lead reached the stage")
    score: int | None = Field(None, description="Fit score")
    fit_grade: str | None = None
    engagement_score: int | None = None
    rules: list[str] = Field(default_factory=list, description="The rules that promoted it")
    next_stage: str | None = None
    missing: list[str] = Field(
        default_factory=list, description="What the next stage still needs, in words"
    )
    ruleset: str | None = Field(None, description="The ruleset version label that decided")


class HandoffOwner(Payload):
    id: UUID
    email: str = Field(description="The rep's email (not the lead's)")
    name: str
    team_id: UUID | None = None
    team: str | None = None


class HandoffQueue(Payload):
    team_id: UUID | None = None
    team: str | None = None


class HandoffRouting(Payload):
    trigger: str = Field(description="What asked for routing: qualified, rejected, sla_escalation…")
    rule: str
    reason: str
    strategy: str | None = None
    ruleset_version: int | None = None
    decided_at: datetime
    available_at: datetime | None = Field(
        None, description="Held for the owner: their working hours start then"
    )


class HandoffSla(Payload):
    policy: str
    clock: str = Field(description="pickup (in a queue) or first_response (an owner)")
    deadline: datetime
    target_s: float = Field(description="The target, in working seconds")


class HandoffLinks(Payload):
    lead: str = Field(description="GET: the lead (secret key)")
    explanation: str = Field(description="GET: why it qualified (secret key)")
    routing: str = Field(description="GET: who owns it and why (secret key)")


class LeadQualifiedData(Payload):
    lead_id: UUID
    handoff: Handoff = Field(
        description="qualified: first handed to sales; promoted: a later handoff stage; "
        "reassigned: another owner or queue"
    )
    is_test: bool = False
    contact: HandoffContact
    company: HandoffCompany
    attribution: HandoffAttribution
    consent: HandoffConsent | None = Field(None, description="None: the inquiry asked nothing")
    qualification: HandoffQualification
    owner: HandoffOwner | None = Field(None, description="None: waiting in ``queue``")
    queue: HandoffQueue | None = None
    routing: HandoffRouting | None = None
    sla: HandoffSla | None = Field(None, description="None: no SLA policy applies")
    custom: dict[str, Any] = Field(default_factory=dict, description="The form's other fields")
    links: HandoffLinks


@register
class LeadQualified(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["lead.qualified"] = "lead.qualified"
    data: LeadQualifiedData

    def encode(self) -> bytes:
        """Every field of ``data`` is there, null when unknown: a receiver maps the snapshot
        by its schema and never has to tell "absent" from "not known" (the envelope's optional
        attributes are still left out when unset)."""
        document = self.model_dump(mode="json", exclude_none=True, exclude={"data"})
        document["data"] = self.data.model_dump(mode="json")
        return orjson.dumps(document)
