"""Why a lead is where it is: its score by rule, grade, stage, what promoted it, what is missing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
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
from shared.models import Lead
from shared.problems import Problem

WAITING_FOR = {
    "mql": ["sales acceptance: the CRM posts the outcome 'accepted'"],
    "sql": ["an opportunity: the CRM posts the outcome 'opportunity'"],
    "opportunity": ["a booking ('booked' or 'won') or 'lost' from the CRM"],
}
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
    if lead.ruleset is not None:
        label, ruleset = lead.ruleset, await rulesets.by_label(session, lead.ruleset)
    else:
        try:
            label, ruleset = await rulesets.active(session)
        except NotReady as waiting:
            raise Problem(409, "Conflict", f"not scored yet: {waiting}", field="ruleset") from None
    activities = (await store.activities_of(session, [lead_id])).get(lead_id, [])
    submissions = (await store.submissions_of(session, [lead_id])).get(lead_id, [])
    decision = qualify(facts_of(lead, submissions), activities, ruleset, now=now)
    moves = list(
        await session.scalars(
            select(LeadTransition)
            .where(LeadTransition.lead_id == lead_id)
            .order_by(LeadTransition.occurred_at, LeadTransition.id)
        )
    )
    promoted = next((m for m in reversed(moves) if m.to_stage == lead.stage), None)
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
        "missing": _missing(lead.stage, decision),
        "transitions": [_move(m) for m in moves],
    }
    for name, section in sections.items():
        explanation[name] = await section(session, lead_id)
    return explanation


def _rules(decision: Decision, kind: str) -> list[dict[str, Any]]:
    return [
        {"rule": c.rule, "points": c.points, "count": c.count}
        for c in decision.contributions
        if c.kind == kind
    ]


def _missing(stage: str, decision: Decision) -> list[str]:
    if stage in ("inquiry", "recycled"):
        blockers = list(decision.mql.missing)
        if decision.disqualified:
            blockers.append(f"disqualifier {decision.disqualified.rule} applies")
        if stage == "recycled" and decision.recycle:
            blockers.append(f"recycle rule {decision.recycle.rule} still applies")
        return blockers
    if stage == "sal":
        return list(decision.sql.missing)
    return WAITING_FOR.get(stage, [])


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
