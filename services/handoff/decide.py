"""When a lead is handed to sales: the emission rule of ``lead.qualified``. Pure.

A lead is handed over while it stands in a handoff stage (``LEADFLOW_HANDOFF__STAGES``: MQL and
SQL by default) with an owner, or waiting in a team's queue, unless it is a test lead,
quarantined or erased. Each handoff has a key (stage, owner, queue's team); a handoff whose key is
the last one emitted for the lead is no new handoff. So ``lead.mql`` and ``lead.routed`` give one
event in whichever order they are applied, and a redelivered event gives none.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from uuid import UUID

from shared.events.handoff import Handoff

ROUTED, QUEUED = "routed", "queued"


@dataclass(frozen=True, slots=True)
class HandoffKey:
    stage: str
    owner_id: UUID | None
    team_id: UUID | None
    """The queue's team; None when the lead has an owner."""


@dataclass(frozen=True, slots=True)
class LeadState:
    """A lead as it stands now (never as an event said it stood)."""

    stage: str
    routing_status: str | None
    owner_id: UUID | None = None
    team_id: UUID | None = None
    is_test: bool = False
    quarantined: bool = False
    erased: bool = False


def key_of(state: LeadState, stages: Collection[str]) -> HandoffKey | None:
    """The handoff the lead stands in, if it stands in one."""
    if state.is_test or state.quarantined or state.erased or state.stage not in stages:
        return None
    if state.routing_status == ROUTED and state.owner_id is not None:
        return HandoffKey(state.stage, state.owner_id, None)
    if state.routing_status == QUEUED:
        return HandoffKey(state.stage, None, state.team_id)
    return None


def handoff_for(key: HandoffKey | None, last: HandoffKey | None) -> Handoff | None:
    """What handing over at ``key`` is, after ``last``: nothing when it is the same handoff."""
    if key is None or key == last:
        return None
    if last is None:
        return "qualified"
    if (key.owner_id, key.team_id) != (last.owner_id, last.team_id):
        return "reassigned"
    return "promoted"


def decide(
    state: LeadState, last: HandoffKey | None, stages: Collection[str]
) -> tuple[Handoff, HandoffKey] | None:
    """The handoff to emit for the lead, and its key to remember; None: nothing to emit."""
    key = key_of(state, stages)
    handoff = handoff_for(key, last)
    if handoff is None or key is None:
        return None
    return handoff, key
