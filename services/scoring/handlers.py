"""Scoring's event handlers: event in, effects and new events staged in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.rules import RULESET, LeadFacts, score
from shared.config import Settings
from shared.events import Event, LeadReceived, LeadScored, LeadScoredData
from shared.ids import new_id
from shared.models import Lead, LeadHistory
from shared.outbox import stage

SOURCE = "/leadflow/scoring"
leads = Lead.__table__


class LeadMissing(LookupError):
    """The event names a lead the database does not hold."""


class ScoringHandler:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, event: Event, *, session: AsyncSession, now: datetime) -> None:
        if isinstance(event, LeadReceived):
            await self.score_lead(event.data.lead_id, session=session, now=now)

    async def score_lead(self, lead_id: UUID, *, session: AsyncSession, now: datetime) -> None:
        # The row lock makes a lead's events commit (and so reach the outbox) in order.
        query = select(leads).where(leads.c.id == lead_id).with_for_update()
        lead = (await session.execute(query)).one_or_none()
        if lead is None:
            raise LeadMissing(f"lead {lead_id} not found")
        result = score(
            LeadFacts(lead.email, lead.phone, lead.first_name, lead.last_name, lead.company)
        )
        await session.execute(
            update(leads)
            .where(leads.c.id == lead_id)
            .values(score=result.points, ruleset=RULESET, scored_at=now, updated_at=now)
        )
        event = LeadScored.about_lead(
            lead_id,
            LeadScoredData(
                lead_id=lead_id,
                score=result.points,
                previous_score=lead.score,
                rules_fired=list(result.fired),
            ),
            source=SOURCE,
            time=now,
            ruleset=RULESET,
        )
        await session.execute(
            insert(LeadHistory.__table__).values(
                id=new_id(),
                lead_id=lead_id,
                occurred_at=now,
                kind=event.type,
                event_id=event.id,
                detail={
                    "score": result.points,
                    "rules_fired": list(result.fired),
                    "ruleset": RULESET,
                },
            )
        )
        await stage(session, self.settings, event)
