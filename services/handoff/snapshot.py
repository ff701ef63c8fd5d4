"""A lead's parts, assembled into the ``lead.qualified`` event a CRM can act on alone. Pure."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.handoff.decide import QUEUED, ROUTED, LeadState
from services.handoff.parts import LeadParts
from shared.events import HandoffLinks, LeadQualified, LeadQualifiedData
from shared.events.handoff import Handoff

SOURCE = "/leadflow/handoff"


def state_of(parts: LeadParts) -> LeadState:
    """The lead as its parts describe it: what the event would say, checked by the rule again."""
    routing, intake = parts.routing, parts.intake
    if routing.owner is not None:
        status, owner_id, team_id = ROUTED, routing.owner.id, None
    elif routing.queue is not None:
        status, owner_id, team_id = QUEUED, None, routing.queue.team_id
    else:
        status, owner_id, team_id = None, None, None
    return LeadState(
        stage=parts.qualification.stage,
        routing_status=status,
        owner_id=owner_id,
        team_id=team_id,
        is_test=intake.is_test,
        quarantined=intake.quarantined,
        erased=intake.erased,
    )


def links(public_url: str, lead_id: UUID) -> HandoffLinks:
    lead = f"{public_url.rstrip('/')}/v1/leads/{lead_id}"
    return HandoffLinks(lead=lead, explanation=f"{lead}/explain", routing=f"{lead}/routing")


def snapshot(
    lead_id: UUID, parts: LeadParts, *, handoff: Handoff, public_url: str
) -> LeadQualifiedData:
    intake, routing = parts.intake, parts.routing
    company = intake.company.model_copy(
        update={"account_id": routing.account_id, "is_expansion": routing.is_expansion}
    )
    return LeadQualifiedData(
        lead_id=lead_id,
        handoff=handoff,
        is_test=intake.is_test,
        contact=intake.contact,
        company=company,
        attribution=intake.attribution,
        consent=intake.consent,
        qualification=parts.qualification,
        owner=routing.owner,
        queue=None if routing.owner is not None else routing.queue,
        routing=routing.routing,
        sla=parts.sla,
        custom=dict(intake.custom),
        links=links(public_url, lead_id),
    )


def qualified_event(data: LeadQualifiedData, *, now: datetime) -> LeadQualified:
    """The event, its ``ruleset`` extension the version label that qualified the lead."""
    return LeadQualified.about_lead(
        data.lead_id, data, source=SOURCE, time=now, ruleset=data.qualification.ruleset
    )
