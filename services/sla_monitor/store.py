"""The SLA monitor's queries: the active policies, a lead's facts and open clocks, the due clocks.

The sweep claims due clocks with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so monitors running
side by side each take different clocks and a tier, fired and recorded in one transaction with
its event in the outbox, fires once. SQLite has one writer at a time, which serialises sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.models import OPEN, SlaClock, SlaTouch
from services.sla_monitor.policy import CompiledPolicies, compile_policies
from services.sla_monitor.tracking import LeadState
from shared.cosign.models import CosignedVersion
from shared.db import among, rowcount
from shared.models import Inquiry, Lead

KIND = "sla"
"""The SLA policies' kind among the co-signed versions (``versions.SLA``)."""


class PolicyCache:
    """Compiled versions by number; the database says which one is active (one query a batch)."""

    def __init__(self) -> None:
        self._compiled: dict[int, CompiledPolicies] = {}

    async def active(self, session: AsyncSession) -> tuple[int, CompiledPolicies] | None:
        """The active co-signed version; None when no SLA policy is live (no clock starts)."""
        row = (
            await session.execute(
                select(CosignedVersion.version, CosignedVersion.content).where(
                    CosignedVersion.kind == KIND, CosignedVersion.status == "active"
                )
            )
        ).first()
        if row is None:
            return None
        if row.version not in self._compiled:
            if len(self._compiled) > 16:
                self._compiled.clear()
            self._compiled[row.version] = compile_policies(row.content)
        return row.version, self._compiled[row.version]


LEAD_COLUMNS = (
    Lead.id, Lead.stage, Lead.fit_grade, Lead.score, Lead.engagement_score, Lead.source,
    Lead.country, Lead.is_expansion, Lead.is_test, Lead.erased_at, Lead.created_at,
)  # fmt: skip


async def tracking_state(
    session: AsyncSession, lead_ids: Sequence[UUID], *, with_submissions: bool
) -> dict[UUID, LeadState]:
    """The leads (gone ones left out), each with its open clocks locked for this transaction,
    when its inquiries arrived and (``with_submissions``) what they said, and the responses no
    clock counted yet: four queries."""
    rows = await session.execute(select(*LEAD_COLUMNS).where(among(session, Lead.id, lead_ids)))
    found = {row.id: LeadState(row) for row in rows}
    clocks = await session.scalars(
        select(SlaClock)
        .where(among(session, SlaClock.lead_id, found.keys()), SlaClock.state == OPEN)
        .order_by(SlaClock.lead_id, SlaClock.started_at, SlaClock.id)
        .with_for_update()
    )
    for clock in clocks:
        found[clock.lead_id].clocks.append(clock)
    columns = [Inquiry.lead_id, Inquiry.received_at]
    if with_submissions:
        columns.append(Inquiry.submission)
    inquiries = select(*columns).where(among(session, Inquiry.lead_id, found.keys()))
    for row in await session.execute(inquiries.order_by(Inquiry.received_at)):
        state = found[row.lead_id]
        state.received.append(row.received_at)
        if with_submissions:
            state.submissions.append(dict(row.submission or {}))
    touches = select(SlaTouch).where(among(session, SlaTouch.lead_id, found.keys()))
    for touch in await session.scalars(touches.order_by(SlaTouch.occurred_at)):
        found[touch.lead_id].touches.append(touch)
    return found


async def prune_touches(session: AsyncSession, *, before: datetime) -> int:
    """Forget responses kept since before ``before`` that no clock counted."""
    return rowcount(await session.execute(delete(SlaTouch).where(SlaTouch.created_at < before)))


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[SlaClock]:
    """Open clocks with a tier due by ``now``, earliest first, that no other sweep holds."""
    query = (
        select(SlaClock)
        .where(SlaClock.next_due_at.is_not(None), SlaClock.next_due_at <= now)
        .order_by(SlaClock.next_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(query))


async def earliest_due(session: AsyncSession) -> datetime | None:
    value: datetime | None = await session.scalar(
        select(func.min(SlaClock.next_due_at)).where(SlaClock.next_due_at.is_not(None))
    )
    return value


async def clock(session: AsyncSession, clock_id: UUID, *, lock: bool = False) -> SlaClock | None:
    query = select(SlaClock).where(SlaClock.id == clock_id)
    if lock:
        query = query.with_for_update()
    found: SlaClock | None = await session.scalar(query)
    return found


STANDING = {
    "on_track": (SlaClock.next_tier == 1) & SlaClock.breached_at.is_(None),
    "warned": (SlaClock.next_tier > 1) & SlaClock.breached_at.is_(None),
    "breached": SlaClock.breached_at.is_not(None),
    "acknowledged": SlaClock.acknowledged_at.is_not(None),
}
"""Where an open clock stands: no tier fired yet, warned, past its deadline; acknowledged."""


async def open_by_deadline(
    session: AsyncSession, *, filters: dict[str, Any], limit: int, standing: str | None = None
) -> list[SlaClock]:
    """Open clocks, least time left first; ``filters`` by column (team, owner_email, policy…)."""
    query = select(SlaClock).where(SlaClock.state == OPEN)
    for column, value in filters.items():
        if value is not None:
            query = query.where(getattr(SlaClock, column) == value)
    if standing is not None:
        query = query.where(STANDING[standing])
    query = query.order_by(SlaClock.deadline, SlaClock.id).limit(limit)
    return list(await session.scalars(query))


async def breached_between(
    session: AsyncSession, since: datetime, until: datetime, *, limit: int
) -> list[SlaClock]:
    """Clocks whose deadline passed unanswered within the period, latest first."""
    query = (
        select(SlaClock)
        .where(SlaClock.breached_at >= since, SlaClock.breached_at < until)
        .order_by(SlaClock.breached_at.desc(), SlaClock.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def decided_between(
    session: AsyncSession, since: datetime, until: datetime, *, kind: str
) -> list[SlaClock]:
    """Clocks of ``kind`` decided in the period: met then, or breached then."""
    met = (SlaClock.state == "met") & (SlaClock.closed_at >= since) & (SlaClock.closed_at < until)
    breached = (
        (SlaClock.state != "met") & (SlaClock.breached_at >= since) & (SlaClock.breached_at < until)
    )
    query = select(SlaClock).where(SlaClock.kind == kind, met | breached)
    return list(await session.scalars(query))


async def history_of(session: AsyncSession, lead_id: UUID) -> list[SlaClock]:
    query = select(SlaClock).where(SlaClock.lead_id == lead_id).order_by(SlaClock.created_at)
    return list(await session.scalars(query))


async def counts(session: AsyncSession, *, now: datetime, soon: datetime) -> dict[str, int]:
    """Open clocks, and those with a tier due before ``soon`` (the metrics)."""
    open_count = await session.scalar(
        select(func.count()).select_from(SlaClock).where(SlaClock.state == OPEN)
    )
    due_soon = await session.scalar(
        select(func.count())
        .select_from(SlaClock)
        .where(SlaClock.next_due_at.is_not(None), SlaClock.next_due_at <= soon)
    )
    return {"open": int(open_count or 0), "due_soon": int(due_soon or 0)}


async def changed_since(
    session: AsyncSession, after: tuple[datetime, UUID], *, filters: dict[str, Any], limit: int
) -> list[SlaClock]:
    """Clocks changed after ``after`` (``updated_at``, ``id``), oldest change first."""
    at, clock_id = after
    query = select(SlaClock).where(
        or_(SlaClock.updated_at > at, and_(SlaClock.updated_at == at, SlaClock.id > clock_id))
    )
    for column, value in filters.items():
        if value is not None:
            query = query.where(getattr(SlaClock, column) == value)
    query = query.order_by(SlaClock.updated_at, SlaClock.id).limit(limit)
    return list(await session.scalars(query))
