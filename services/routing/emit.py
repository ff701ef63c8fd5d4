"""The event a routing decision emits: lead.routed, lead.queued or lead.reassigned, with the why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.routing.directory import Directory
from services.routing.router import Decision
from shared.events import (
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadRouted,
    LeadRoutedData,
)

SOURCE = "/leadflow/routing"
RoutingEvent = LeadRouted | LeadQueued | LeadReassigned


def routing_event(
    directory: Directory,
    lead: Any,
    decision: Decision,
    *,
    trigger: str,
    previous: Any,
    why: str,
    now: datetime,
) -> RoutingEvent:
    team = decision.team
    owner = directory.reps.get(decision.owner_id) if decision.owner_id else None
    common: dict[str, Any] = {
        "lead_id": lead.id,
        "trigger": trigger,
        "rule": decision.rule,
        "ruleset_version": directory.ruleset_version,
        "team_id": team.id if team else None,
        "team": team.name if team else None,
        "is_expansion": decision.is_expansion,
        "account_id": decision.account_id,
        "reason": decision.reason,
        # Validated with the rest of the data, in one call: cheaper than constructing each.
        "candidates": [
            {"rep_id": c.rep_id, "name": c.name, "status": c.status, "reason": c.reason}
            for c in decision.candidates
        ],
    }
    if previous is not None:
        data = LeadReassignedData(
            **common,
            previous_owner_id=previous.owner_id,
            owner_id=decision.owner_id,
            owner_email=owner.email if owner else None,
            why=why or trigger,
            available_at=decision.available_at,
        )
        return LeadReassigned.about_lead(lead.id, data, source=SOURCE, time=now)
    if owner is not None:
        routed = LeadRoutedData(
            **common,
            owner_id=owner.id,
            owner_email=owner.email,
            strategy=decision.strategy,
            available_at=decision.available_at,
        )
        return LeadRouted.about_lead(lead.id, routed, source=SOURCE, time=now)
    return LeadQueued.about_lead(lead.id, LeadQueuedData(**common), source=SOURCE, time=now)
