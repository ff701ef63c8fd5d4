"""Scoring's reads and writes, a batch at a time: one statement per table, not one per lead.

On PostgreSQL the hot statements go straight to asyncpg with the batch as array parameters
(``= ANY($1)``, ``unnest``) or through COPY: one fixed statement text whatever the batch size,
one Bind for the whole batch, and no per-row parameter or result processing in SQLAlchemy (which
cost more CPU than qualifying the leads). SQLite, in-process, keeps the plain statements.
"""

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
from services.scoring.models import LeadTransition, ScoringActivity
from services.scoring.ruleset import CompiledRuleset, compile_ruleset
from shared.consumer import NotReady
from shared.cosign.models import CosignedVersion
from shared.db import among, driver_connection, insert_ignoring_conflicts, insert_rows, translated
from shared.models import Inquiry, Lead, LeadHistory, table_of

DEFAULT_RULESET = Path(__file__).resolve().parents[2] / "rules" / "default.yaml"
leads = table_of(Lead)
inquiries = table_of(Inquiry)
history = table_of(LeadHistory)
activities = table_of(ScoringActivity)
transitions = table_of(LeadTransition)
versions = table_of(CosignedVersion)
KIND = "qualification"
"""The rulesets' kind among the co-signed versions (``versions.QUALIFICATION``)."""
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


NO_ACTIVE_RULESET = (
    "no co-signed ruleset is active: leads wait unscored until one is "
    "(leadflow rules propose / approve / activate)"
)


@lru_cache(maxsize=1)
def bundled_default() -> tuple[str, CompiledRuleset]:
    """The repository's sample ruleset, as earlier versions labelled the leads it scored while no
    version was active (they still explain by it)."""
    compiled = compile_ruleset(DEFAULT_RULESET.read_text())
    return f"default-{compiled.content_hash[:12]}", compiled


class RulesetCache:
    """Compiled versions by label; the database says which one is active (one query a batch)."""

    def __init__(self) -> None:
        self._compiled: dict[str, CompiledRuleset] = {}

    async def active(self, session: AsyncSession) -> tuple[str, CompiledRuleset]:
        """The active co-signed version. Without one nothing is scored by rules nobody signed:
        the consumer waits (``NotReady``) and the leads are scored once a version goes live."""
        label = await session.scalar(
            select(versions.c.label).where(versions.c.kind == KIND, versions.c.status == "active")
        )
        if label is None:
            raise NotReady(NO_ACTIVE_RULESET)
        return label, await self.by_label(session, label)

    async def active_or_sample(self, session: AsyncSession) -> tuple[str, CompiledRuleset]:
        """What a backtest compares with: the active version, or before the first one goes live
        the bundled sample (``rules/default.yaml``)."""
        try:
            return await self.active(session)
        except NotReady:
            return bundled_default()

    async def by_label(self, session: AsyncSession, label: str) -> CompiledRuleset:
        if label not in self._compiled:
            if label.startswith("default-") and label == bundled_default()[0]:
                return bundled_default()[1]
            content = await session.scalar(
                select(versions.c.content).where(versions.c.kind == KIND, versions.c.label == label)
            )
            if content is None:
                raise LookupError(f"no ruleset {label}")
            self._compiled[label] = compile_ruleset(content)
        return self._compiled[label]


FACTS = ("email", "phone", "first_name", "last_name", "company", "source")
LOCK = (
    f"SELECT id, {', '.join(FACTS + LEAD_STATE)} FROM leads"
    " WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
)
ADD_ACTIVITIES = (
    "INSERT INTO scoring_activities (id, lead_id, kind, occurred_at, event_id)"
    " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::uuid[])"
    " ON CONFLICT DO NOTHING"
)
# A batch's activities and submissions: one index probe per lead, whatever the statistics. As
# plain joins (chosen over ``= ANY``, whose generic plan was 10× slower here), the generic plans
# made while the tables were nearly empty (a fresh database: no autoanalyze in its first minute)
# were hash joins over sequential scans of the whole table, at every batch until the next
# analyze. ``OFFSET 0`` keeps each LATERAL subquery from being flattened into such a join.
ACTIVITIES = (
    "SELECT b.id, a.kind, a.occurred_at FROM unnest($1::uuid[]) AS b(id) CROSS JOIN LATERAL"
    " (SELECT kind, occurred_at FROM scoring_activities WHERE lead_id = b.id OFFSET 0) AS a"
)
SUBMISSIONS = (
    "SELECT b.id, i.submission FROM unnest($1::uuid[]) AS b(id) CROSS JOIN LATERAL"
    " (SELECT submission, received_at FROM inquiries WHERE lead_id = b.id OFFSET 0) AS i"
    " ORDER BY i.received_at"
)


def _array_type(column: str) -> str:
    if column in ("score", "engagement_score"):
        return "int"
    return "timestamptz" if column.endswith("_at") else "text"


SAVE = (
    "UPDATE leads AS l SET "
    + ", ".join(f"{c} = v.{c}" for c in LEAD_STATE)
    + " FROM unnest($1::uuid[], "
    + ", ".join(f"${i}::{_array_type(c)}[]" for i, c in enumerate(LEAD_STATE, start=2))
    + ") AS v(id, "
    + ", ".join(LEAD_STATE)
    + ") WHERE l.id = v.id"
)


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _lead(row: Any) -> dict[str, Any]:
    """What scoring reads of a lead row from asyncpg, its id a ``uuid.UUID`` (asyncpg's own UUID
    type is not JSON serialisable), as SQLAlchemy would return it."""
    lead = dict(row)
    lead["id"] = UUID(bytes=lead["id"].bytes)
    return lead


async def lock_leads(session: AsyncSession, lead_ids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    """The leads, row-locked in id order (two consumers never deadlock on one batch)."""
    if _is_postgresql(session):
        driver = await driver_connection(session)
        with translated(LOCK):
            rows = await driver.fetch(LOCK, list(lead_ids))
        return {lead["id"]: lead for lead in map(_lead, rows)}
    query = select(leads).where(among(session, leads.c.id, sorted(lead_ids))).order_by(leads.c.id)
    rows = await session.execute(query.with_for_update())
    return {row.id: dict(row._mapping) for row in rows}


async def add_activities(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if _is_postgresql(session):
        columns = ("id", "lead_id", "kind", "occurred_at", "event_id")
        driver = await driver_connection(session)
        with translated(ADD_ACTIVITIES):
            await driver.execute(ADD_ACTIVITIES, *([r[c] for r in rows] for c in columns))
        return
    await session.execute(insert_ignoring_conflicts(session, activities), rows)


async def activities_of(session: AsyncSession, lead_ids: Iterable[UUID]) -> dict[UUID, list]:
    found: dict[UUID, list[Activity]] = defaultdict(list)
    if _is_postgresql(session):
        driver = await driver_connection(session)
        with translated(ACTIVITIES):
            for lead_id, kind, at in await driver.fetch(ACTIVITIES, list(lead_ids)):
                found[lead_id].append(Activity(kind, at))
        return found
    query = select(activities.c.lead_id, activities.c.kind, activities.c.occurred_at).where(
        among(session, activities.c.lead_id, lead_ids)
    )
    for row in await session.execute(query):
        found[row.lead_id].append(Activity(row.kind, row.occurred_at))
    return found


async def submissions_of(session: AsyncSession, lead_ids: Iterable[UUID]) -> dict[UUID, list]:
    found: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    if _is_postgresql(session):
        driver = await driver_connection(session)
        with translated(SUBMISSIONS):
            for lead_id, submission in await driver.fetch(SUBMISSIONS, list(lead_ids)):
                found[lead_id].append(submission or {})
        return found
    query = (
        select(inquiries.c.lead_id, inquiries.c.submission)
        .where(among(session, inquiries.c.lead_id, lead_ids))
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
    """Each lead's new state (one statement), its history and transitions (COPY on PostgreSQL)."""
    if _is_postgresql(session):
        states = list(states)
        if states:
            driver = await driver_connection(session)
            columns = [[s["id"] for s in states], *([s[k] for s in states] for k in LEAD_STATE)]
            with translated(SAVE):
                await driver.execute(SAVE, *columns)
        await insert_rows(session, history, history_rows)
        await insert_rows(session, transitions, transition_rows)
        return
    rows = [{"b_id": s["id"], **{k: s[k] for k in LEAD_STATE}} for s in states]
    if rows:
        statement = update(leads).where(leads.c.id == bindparam("b_id"))
        await session.execute(statement, rows)
    if history_rows:
        await session.execute(insert(history), history_rows)
    if transition_rows:
        await session.execute(insert(transitions), transition_rows)
