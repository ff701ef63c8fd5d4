"""The routing events as emitted encode to exactly the bytes of events built field by field from
typed candidates (as they were before candidates were validated with the rest of the data)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.routing.accounts import AccountIndex
from services.routing.directory import Directory, RepInfo, TeamInfo
from services.routing.emit import SOURCE, routing_event
from services.routing.router import Candidate, Decision
from services.routing.rules import BUILT_IN, compile_routing
from shared.events import (
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadRouted,
    LeadRoutedData,
)
from shared.events.routing import CandidateData

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
REASONS = [None, "", "away", "outside_hours", "account_owner_deactivated", "daily_cap"]


class Lead:
    def __init__(self, n: int) -> None:
        self.id = UUID(int=10_000 + n)
        self.owner_id = UUID(int=n) if n % 2 else None


def directory(rng: random.Random) -> Directory:
    reps = [RepInfo(UUID(int=i), f"r{i}@co.com", f"Rep {i} «ü»") for i in range(1, 25)]
    team = TeamInfo(UUID(int=500), "pool", members=tuple(r.id for r in reps))
    return Directory(
        "t",
        {r.id: r for r in reps},
        {team.id: team},
        AccountIndex([]),
        compile_routing(BUILT_IN),
        ruleset_version=rng.choice([None, 7]),
    )


def decision(rng: random.Random, found: Directory) -> Decision:
    reps = list(found.reps.values())
    candidates = tuple(
        Candidate(
            rep.id,
            rep.name,
            rng.choice(["chosen", "eligible", "skipped"]),
            rng.choice(REASONS),
        )
        for rep in rng.sample(reps, rng.randint(0, 20))
    )
    owner = rng.choice([None, *reps[:3]])
    return Decision(
        "routed" if owner else "queued",
        rng.choice(["account_match", "default_queue", "dach"]),
        rng.choice(["round robin in pool", 'nobody eligible in "pool"\n']),
        owner.id if owner else None,
        rng.choice([None, *found.teams.values()]),
        rng.choice([None, "round_robin", "capacity"]),
        rng.random() < 0.5,
        rng.choice([None, UUID(int=77)]),
        rng.choice([None, NOW + timedelta(hours=3, microseconds=5)]),
        candidates,
    )


def field_by_field(
    found: Directory, lead: Any, decision: Decision, *, previous: Any, why: str, event_id: UUID
) -> Any:
    """The events as routing built them before: each candidate constructed on its own."""
    team = decision.team
    owner = found.reps.get(decision.owner_id) if decision.owner_id else None
    common: dict[str, Any] = {
        "lead_id": lead.id,
        "trigger": "qualified",
        "rule": decision.rule,
        "ruleset_version": found.ruleset_version,
        "team_id": team.id if team else None,
        "team": team.name if team else None,
        "is_expansion": decision.is_expansion,
        "account_id": decision.account_id,
        "reason": decision.reason,
        "candidates": [
            CandidateData.model_construct(
                rep_id=c.rep_id, name=c.name, status=c.status, reason=c.reason
            )
            for c in decision.candidates
        ],
    }
    envelope = {"id": event_id, "source": SOURCE, "subject": str(lead.id), "time": NOW}
    if previous is not None:
        data: Any = LeadReassignedData(
            **common,
            previous_owner_id=previous.owner_id,
            owner_id=decision.owner_id,
            owner_email=owner.email if owner else None,
            why=why or "qualified",
            available_at=decision.available_at,
        )
        return LeadReassigned(**envelope, data=data)
    if owner is not None:
        data = LeadRoutedData(
            **common,
            owner_id=owner.id,
            owner_email=owner.email,
            strategy=decision.strategy,
            available_at=decision.available_at,
        )
        return LeadRouted(**envelope, data=data)
    return LeadQueued(**envelope, data=LeadQueuedData(**common))


@pytest.mark.parametrize("seed", range(3))
def test_routing_events_encode_to_the_same_bytes_as_built_field_by_field(seed: int) -> None:
    rng = random.Random(seed)
    found = directory(rng)
    kinds = set()
    for n in range(300):
        lead = Lead(n)
        made = decision(rng, found)
        previous = rng.choice([None, lead])
        why = rng.choice(["", "rejected: too far"])
        event = routing_event(
            found, lead, made, trigger="qualified", previous=previous, why=why, now=NOW
        )
        expected = field_by_field(found, lead, made, previous=previous, why=why, event_id=event.id)
        assert event.encode() == expected.encode()
        assert event == expected
        kinds.add(event.type)
    assert kinds == {"lead.routed", "lead.queued", "lead.reassigned"}
