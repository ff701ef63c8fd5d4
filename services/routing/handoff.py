"""Routing's part of a lead's handoff (``lead.qualified``): its owner, or the team whose queue it
waits in, the latest routing decision about it, and whether it is an existing customer's
(expansion), for a batch of leads in four queries. Reads only: no routing lock is taken."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.models import Assignment, Rep, Team
from shared.db import among
from shared.events import HandoffOwner, HandoffQueue, HandoffRouting
from shared.models import Lead


@dataclass(frozen=True, slots=True)
class LeadRouting:
    owner: HandoffOwner | None
    queue: HandoffQueue | None
    routing: HandoffRouting | None
    is_expansion: bool | None
    account_id: UUID | None


async def lead_routing(
    session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
) -> dict[UUID, LeadRouting]:
    """Each lead's owner (``routing_status`` routed) or queue (queued), and the latest decision."""
    ids = sorted(set(lead_ids))
    leads = (
        await session.execute(
            select(
                Lead.id, Lead.owner_id, Lead.owner_team_id, Lead.routing_status,
                Lead.is_expansion, Lead.account_id,
            ).where(among(session, Lead.id, ids))
        )
    ).all()  # fmt: skip
    latest = await _latest_decisions(session, ids)
    owners = sorted({lead.owner_id for lead in leads if lead.owner_id is not None})
    reps = select(Rep.id, Rep.email, Rep.name).where(among(session, Rep.id, owners))
    rep_rows = {rep.id: rep for rep in await session.execute(reps)} if owners else {}
    team_ids = sorted({lead.owner_team_id for lead in leads if lead.owner_team_id is not None})
    names = select(Team.id, Team.name).where(among(session, Team.id, team_ids))
    teams = {row.id: row.name for row in await session.execute(names)} if team_ids else {}
    return {
        lead.id: routing_of(lead, latest.get(lead.id), rep_rows.get(lead.owner_id), teams)
        for lead in leads
    }


def routing_of(lead: Any, decision: Any, rep: Any, teams: dict[UUID, str]) -> LeadRouting:
    """A lead row's part, with its latest routing ``decision`` (None: never routed), its
    owner's ``rep`` row (id, email, name) and the team names by id. Pure."""
    team = teams.get(lead.owner_team_id) if lead.owner_team_id is not None else None
    owner = queue = None
    if lead.routing_status == "routed" and rep is not None:
        owner = HandoffOwner(
            id=rep.id, email=rep.email, name=rep.name, team_id=lead.owner_team_id, team=team
        )
    elif lead.routing_status == "queued":
        queue = HandoffQueue(team_id=lead.owner_team_id, team=team)
    return LeadRouting(
        owner=owner,
        queue=queue,
        routing=_routing(decision) if decision is not None else None,
        is_expansion=lead.is_expansion,
        account_id=lead.account_id,
    )


def _routing(decision: Any) -> HandoffRouting:
    return HandoffRouting(
        trigger=decision.trigger,
        rule=decision.rule,
        reason=decision.reason,
        strategy=decision.strategy,
        ruleset_version=decision.ruleset_version,
        decided_at=decision.decided_at,
        available_at=decision.available_at,
    )


DECISION = (
    Assignment.lead_id, Assignment.trigger, Assignment.rule, Assignment.reason,
    Assignment.strategy, Assignment.ruleset_version, Assignment.decided_at,
    Assignment.available_at,
)  # fmt: skip


async def _latest_decisions(session: AsyncSession, ids: list[UUID]) -> dict[UUID, Any]:
    """Each lead's latest routing decision, in one query."""
    order = (Assignment.decided_at.desc(), Assignment.id.desc())
    rank = func.row_number().over(partition_by=Assignment.lead_id, order_by=order)
    ranked = (
        select(*DECISION, rank.label("rank"))
        .where(among(session, Assignment.lead_id, ids))
        .subquery()
    )
    query = select(ranked).where(ranked.c.rank == 1)
    return {row.lead_id: row for row in await session.execute(query)}
