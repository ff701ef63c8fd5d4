"""Two routing consumers at once on PostgreSQL: capacity never exceeded, no lead assigned twice."""

from __future__ import annotations

import asyncio
from uuid import UUID

from sqlalchemy import func, select

from services.routing.assign import route_lead
from services.routing.models import Assignment, Rep
from shared.config import Settings
from shared.models import Lead, OutboxMessage
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_leads, capped_pool


async def consumer(db: Database, settings: Settings, leads: list[UUID], batch: int) -> list[str]:
    """Route ``leads`` like a scoring consumer: ``batch`` leads per transaction."""
    outcomes = []
    for start in range(0, len(leads), batch):
        async with db.sessions.begin() as session:
            for lead_id in leads[start : start + batch]:
                decision = await route_lead(session, lead_id, now=NOW, settings=settings)
                outcomes.append(decision.outcome)
                await asyncio.sleep(0)  # let the other consumer in between statements
    return outcomes


async def pool(db: Database) -> None:
    async with db.sessions.begin() as s:
        await capped_pool(s, max_open=5)


async def test_two_consumers_routing_at_once_never_exceed_a_reps_capacity(pg: Database) -> None:
    settings = make_settings(pg)
    await pool(pg)
    async with pg.sessions.begin() as s:
        leads = await add_leads(s, 60)
    first, second = await asyncio.gather(
        consumer(pg, settings, leads[0::2], batch=10),
        consumer(pg, settings, leads[1::2], batch=10),
    )
    assert (first + second).count("routed") == 15 and (first + second).count("queued") == 45
    async with pg.sessions() as s:
        owned = dict(
            (
                await s.execute(
                    select(Lead.owner_id, func.count())
                    .where(Lead.owner_id.is_not(None))
                    .group_by(Lead.owner_id)
                )
            ).all()
        )
        counters = dict((await s.execute(select(Rep.id, Rep.open_leads))).all())
    assert sorted(owned.values()) == [5, 5, 5]
    assert counters == owned  # the counters the router reads agree with the leads table


async def test_two_consumers_given_the_same_leads_assign_each_exactly_once(pg: Database) -> None:
    settings = make_settings(pg)
    await pool(pg)
    async with pg.sessions.begin() as s:
        leads = await add_leads(s, 24)
    # As after a rebalance: both consumers have every event; one lead per transaction.
    first, second = await asyncio.gather(
        consumer(pg, settings, leads, batch=1),
        consumer(pg, settings, list(reversed(leads)), batch=1),
    )
    assert first.count("unchanged") + second.count("unchanged") == 24
    async with pg.sessions() as s:
        decisions = dict(
            (
                await s.execute(
                    select(Assignment.lead_id, func.count()).group_by(Assignment.lead_id)
                )
            ).all()
        )
        emitted = await s.scalar(
            select(func.count()).where(OutboxMessage.type.in_(["lead.routed", "lead.queued"]))
        )
        counters = sorted((await s.execute(select(Rep.open_leads))).scalars())
    assert decisions == dict.fromkeys(leads, 1) and emitted == 24
    assert counters == [5, 5, 5]
