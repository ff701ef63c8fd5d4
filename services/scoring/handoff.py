"""Scoring's part of a lead's handoff (``lead.qualified``): why it stands in its stage, its
scores, and what its next stage still needs (as ``GET /v1/leads/{id}/explain`` says it), for a
batch of leads in a few queries. Reads only. The rules run again only for a lead whose next step
they take (``RULES_DECIDE``: not from MQL or SQL, where sales or the CRM moves it on)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.explain import (
    NEXT,
    RULES_DECIDE,
    into_stage,
    judge,
    missing,
    transitions_of,
)
from services.scoring.models import LeadTransition
from shared.db import among
from shared.events import HandoffQualification
from shared.models import Lead


class Qualifications:
    """Callable once per batch; keeps the compiled ruleset versions between batches."""

    def __init__(self, rulesets: store.RulesetCache | None = None) -> None:
        self.rulesets = rulesets or store.RulesetCache()

    async def __call__(
        self, session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
    ) -> dict[UUID, HandoffQualification]:
        """Each scored lead's qualification; a lead never scored (or gone) is left out."""
        query = select(Lead).where(
            among(session, Lead.id, sorted(set(lead_ids))), Lead.ruleset.is_not(None)
        )
        leads = list(await session.scalars(query))
        if not leads:
            return {}
        to_judge = [lead for lead in leads if lead.stage in RULES_DECIDE]
        judged = await judge(session, to_judge, self.rulesets, now=now) if to_judge else {}
        moves = await transitions_of(session, [lead.id for lead in leads])
        found = {}
        for lead in leads:
            label, decision = judged.get(lead.id, (cast(str, lead.ruleset), None))
            move = into_stage(moves.get(lead.id, []), lead.stage)
            found[lead.id] = qualification(lead, move, label, missing(lead.stage, decision))
        return found


def qualification(
    lead: Lead, move: LeadTransition | None, label: str, still: list[str]
) -> HandoffQualification:
    """The lead's qualification: ``move`` is what put it in its stage (None: no stage change
    was recorded, e.g. a lead imported in it), ``label`` the version that scored it last,
    ``still`` what its next stage needs. Pure."""
    return HandoffQualification(
        stage=lead.stage,
        cause="outcome" if move is not None and move.cause == "outcome" else "rules",
        reason=move.reason if move is not None else lead.stage_reason,
        reached_at=move.occurred_at if move is not None else lead.stage_changed_at,
        score=lead.score,
        fit_grade=lead.fit_grade,
        engagement_score=lead.engagement_score,
        rules=[str(r) for r in move.rules] if move is not None else [],
        next_stage=NEXT.get(lead.stage),
        missing=still,
        ruleset=(move.ruleset if move is not None else None) or label,
    )
