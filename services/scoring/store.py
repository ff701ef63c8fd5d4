"""Scoring's reads and writes, a batch at a time: one statement per table, not one per lead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.facts import Activity
from services.scoring.models import LeadTransition, Ruleset, ScoringActivity
from services.scoring.ruleset import CompiledRuleset, compile_ruleset
from shared.db import insert_ignoring_conflicts
from shared.models import Inquiry, Lead, LeadHistory

DEFAULT_RULESET = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
leads = Lead.__table__
inquiries = Inquiry.__table__
history = LeadHistory.__table__
activities = ScoringActivity.__table__
transitions = LeadTransition.__table__
rulesets = Ruleset.__table__
LEAD_STATE = (
    "score",
    "fit_grade",
    "engagement_score",
    "ruleset",
    "scored_at",
    "stage",
    "stage_reason",
    "stage_changed_at",
    "mql_at",
    "sal_at",
    "sql_at",
    "opportunity_at",
    "won_at",
    "lost_at",
    "recycled_at",
    "disqualified_at",
    "updated_at",
)


@lru_cache(maxsize=1)
def bundled_default() -> tuple[str, CompiledRuleset]:
    """The repository's sample ruleset: what scores leads while no version is active."""
    compiled = compile_ruleset(DEFAULT_RULESET.read_text())
    return f"default-{compiled.content_hash[:12]}", compiled


class RulesetCache:
    """Compiled versions by label; the database says which one is active (one query a batch)."""

    def __init__(self) -> None:
        self._compiled: dict[str, CompiledRuleset] = {}

    async def active(self, session: AsyncSession) -> tuple[str, CompiledRuleset]:
        label = await session.scalar(select(rulesets.c.label).where(rulesets.c.status == "active"))
        if label is None:
            return bundled_default()
        return label, await self.by_label(session, label)

    async def by_label(self, session: AsyncSession, label: str) -> CompiledRuleset:
        if label not in self._compiled:
            if label == bundled_default()[0]:
                return bundled_default()[1]
            content = await session.scalar(
                select(rulesets.c.content).where(rulesets.c.label == label)
            )
            if content is None:
                raise LookupError(f"no ruleset {label}")
            self._compiled[label] = compile_ruleset(content)
        return self._compiled[label]


async def lock_leads(session: AsyncSession, lead_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    """The leads, row-locked in id order (two consumers never deadlock on one batch)."""
    query = select(leads).where(leads.c.id.in_(sorted(lead_ids))).order_by(leads.c.id)
    rows = await session.execute(query.with_for_update())
    return {row.id: dict(row._mapping) for row in rows}


async def add_activities(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert_ignoring_conflicts(session, activities), rows)


async def activities_of(session: AsyncSession, lead_ids: Iterable[UUID]) -> dict[UUID, list]:
    found: dict[UUID, list[Activity]] = defaultdict(list)
    query = select(activities.c.lead_id, activities.c.kind, activities.c.occurred_at).where(
        activities.c.lead_id.in_(list(lead_ids))
    )
    for row in await session.execute(query):
        found[row.lead_id].append(Activity(row.kind, row.occurred_at))
    return found


async def submissions_of(session: AsyncSession, lead_ids: Iterable[UUID]) -> dict[UUID, list]:
    found: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    query = (
        select(inquiries.c.lead_id, inquiries.c.submission)
        .where(inquiries.c.lead_id.in_(list(lead_ids)))
        .order_by(inquiries.c.received_at)
    )
    for row in await session.execute(query):
        found[row.lead_id].append(row.submission or {})
    return found


async def save(
    session: AsyncSession,
    states: Iterable[dict[str, Any]],
    history_rows: list[dict[str, Any]],
    transition_rows: list[dict[str, Any]],
) -> None:
    rows = [{"b_id": s["id"], **{k: s[k] for k in LEAD_STATE}} for s in states]
    if rows:
        statement = update(leads).where(leads.c.id == bindparam("b_id"))
        await session.execute(statement, rows)
    if history_rows:
        await session.execute(insert(history), history_rows)
    if transition_rows:
        await session.execute(insert(transitions), transition_rows)
