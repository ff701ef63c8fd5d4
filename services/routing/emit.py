"""The event a routing decision emits: lead.routed, lead.queued or lead.reassigned, with the why."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
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
from shared.events.routing import CandidateData

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
        "candidates": [
            _candidate(c.rep_id, c.name, c.status, c.reason) for c in decision.candidates
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


@lru_cache(maxsize=8192)
def _candidate(rep_id: Any, name: str, status: str, reason: str | None) -> CandidateData:
    """One (frozen) candidate per rep, status and reason, shared by the events that list it: a
    rep's few standings are built once rather than for every lead, and not kept once per event
    in a batch waiting to be written (which is what made the garbage collector run)."""
    return CandidateData(rep_id=rep_id, name=name, status=status, reason=reason)
