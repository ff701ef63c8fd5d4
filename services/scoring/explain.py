"""Why a lead is where it is: its score by rule, grade, stage, what promoted it, what is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.facts import facts_of
from services.scoring.models import LeadTransition
from services.scoring.rules import Decision, qualify
from shared.consumer import NotReady
from shared.db import among
from shared.models import Lead
from shared.problems import Problem

WAITING_FOR = {
    "mql": ["sales acceptance: the CRM posts the outcome 'accepted'"],
    "sql": ["an opportunity: the CRM posts the outcome 'opportunity'"],
    "opportunity": ["a booking ('booked' or 'won') or 'lost' from the CRM"],
}
RULES_DECIDE = frozenset({"inquiry", "recycled", "sal"})
"""The stages whose next step the rules take: what is missing there needs the lead judged."""
NEXT = {
    "inquiry": "mql",
    "recycled": "mql",
    "mql": "sal",
    "sal": "sql",
    "sql": "opportunity",
    "opportunity": "won",
}


Section = Callable[[AsyncSession, UUID], Awaitable[Any]]
"""Another service's part of a lead's explanation (routing: who owns it and why), added by the
composition root (services/api.py)."""


async def explain(
    session: AsyncSession,
    lead_id: UUID,
    rulesets: store.RulesetCache,
    *,
    now: datetime,
    sections: Mapping[str, Section] = {},  # noqa: B006 - read only
) -> dict[str, Any]:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id")
    try:
        label, decision = (await judge(session, [lead], rulesets, now=now))[lead_id]
    except NotReady as waiting:
        raise Problem(409, "Conflict", f"not scored yet: {waiting}", field="ruleset") from None
    moves = (await transitions_of(session, [lead_id])).get(lead_id, [])
    promoted = into_stage(moves, lead.stage)
    explanation = {
        "lead_id": lead_id,
        "stage": lead.stage,
        "stage_reason": lead.stage_reason,
        "ruleset": label,
        "as_of": now,
        "fit": {
            "score": decision.fit_score,
            "grade": decision.grade,
            "rules": _rules(decision, "fit"),
        },
        "engagement": {"score": decision.engagement_score, "rules": _rules(decision, "engagement")},
        "caps": [{"group": g, "before": b, "cap": c} for g, b, c in decision.capped],
        "promoted_by": _move(promoted) if promoted else None,
        "next_stage": NEXT.get(lead.stage),
        "missing": missing(lead.stage, decision),
        "transitions": [_move(m) for m in moves],
    }
    for name, section in sections.items():
        explanation[name] = await section(session, lead_id)
    return explanation


async def judge(
    session: AsyncSession, leads: Sequence[Any], rulesets: store.RulesetCache, *, now: datetime
) -> dict[UUID, tuple[str, Decision]]:
    """Each lead judged now by the ruleset version that scored it (a lead not scored yet: by the
    active one, ``NotReady`` without one): that version's label and the decision. Two queries
    for the leads' activities and forms, whatever their number."""
    ids = [lead.id for lead in leads]
    activities = await store.activities_of(session, ids)
    submissions = await store.submissions_of(session, ids)
    judged = {}
    for lead in leads:
        if lead.ruleset is not None:
            label, ruleset = lead.ruleset, await rulesets.by_label(session, lead.ruleset)
        else:
            label, ruleset = await rulesets.active(session)
        facts = facts_of(lead, submissions.get(lead.id, []))
        judged[lead.id] = label, qualify(facts, activities.get(lead.id, []), ruleset, now=now)
    return judged


async def transitions_of(
    session: AsyncSession, lead_ids: Sequence[UUID]
) -> dict[UUID, list[LeadTransition]]:
    """Each lead's stage changes, oldest first."""
    query = (
        select(LeadTransition)
        .where(among(session, LeadTransition.lead_id, lead_ids))
        .order_by(LeadTransition.lead_id, LeadTransition.occurred_at, LeadTransition.id)
    )
    found: dict[UUID, list[LeadTransition]] = {}
    for move in await session.scalars(query):
        found.setdefault(move.lead_id, []).append(move)
    return found


def into_stage(moves: Sequence[LeadTransition], stage: str) -> LeadTransition | None:
    """The latest move into ``stage``: what put the lead where it is."""
    return next((m for m in reversed(moves) if m.to_stage == stage), None)


def _rules(decision: Decision, kind: str) -> list[dict[str, Any]]:
    return [
        {"rule": c.rule, "points": c.points, "count": c.count}
        for c in decision.contributions
        if c.kind == kind
    ]


def missing(stage: str, decision: Decision | None) -> list[str]:
    """What the lead still needs for its next stage, in words. ``decision``, the lead judged
    now, is needed only in the stages the rules decide (``RULES_DECIDE``)."""
    if stage not in RULES_DECIDE:
        return WAITING_FOR.get(stage, [])
    if decision is None:
        raise ValueError(f"what a lead in {stage} misses needs it judged")
    if stage in ("inquiry", "recycled"):
        blockers = list(decision.mql.missing)
        if decision.disqualified:
            blockers.append(f"disqualifier {decision.disqualified.rule} applies")
        if stage == "recycled" and decision.recycle:
            blockers.append(f"recycle rule {decision.recycle.rule} still applies")
        return blockers
    return list(decision.sql.missing)


def _move(move: LeadTransition) -> dict[str, Any]:
    return {
        "at": move.occurred_at,
        "from": move.from_stage,
        "to": move.to_stage,
        "cause": move.cause,
        "rules": move.rules,
        "reason": move.reason,
        "outcome": move.outcome,
        "ruleset": move.ruleset,
    }
