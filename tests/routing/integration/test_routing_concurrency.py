"""Routers at once on PostgreSQL: capacity never exceeded, no lead assigned twice, each pool's
fairness ledger exact; routers of different pools never wait for each other, routers of one pool
(or of pools sharing a rep) take turns."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from uuid import UUID

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.assign import RoutingDecision, route_lead, route_leads
from services.routing.models import Assignment, LedgerEntry, Rep
from shared.config import Settings
from shared.models import Lead, OutboxMessage
from tests.support.common import Database, eventually, make_settings
from tests.support.routing import NOW, activate_rules, add_lead, add_leads, capped_pool, rep, team

ROUTERS = 3
POOLS = """
name: pools
default_queue: north
rules:
  - {id: south, when: 'lead.country == "ZA"', team: south}
  - {id: east, when: 'lead.country == "JP"', team: east}
"""
COUNTRY = {"north": "US", "south": "ZA", "east": "JP"}


async def consumer(db: Database, settings: Settings, leads: list[UUID], batch: int) -> list[str]:
    """Route ``leads`` like a scoring consumer: ``batch`` leads per transaction."""
    outcomes = []
    for start in range(0, len(leads), batch):
        async with db.sessions.begin() as session:
            for lead_id in leads[start : start + batch]:
                decision = await route_lead(session, lead_id, now=NOW, settings=settings)
                outcomes.append(decision.outcome)
                await asyncio.sleep(0)  # let the other consumers in between statements
    return outcomes


async def pool(db: Database) -> None:
    async with db.sessions.begin() as s:
        await capped_pool(s, max_open=5)


async def owned(db: Database) -> tuple[dict[UUID, int], dict[UUID, int]]:
    """Leads held per owner in the leads table, and the counters the router reads."""
    async with db.sessions() as s:
        held = dict(
            (
                await s.execute(
                    select(Lead.owner_id, func.count())
                    .where(Lead.owner_id.is_not(None))
                    .group_by(Lead.owner_id)
                )
            ).all()
        )
        counters = dict((await s.execute(select(Rep.id, Rep.open_leads))).all())
    return held, {rep: count for rep, count in counters.items() if count}


async def test_three_consumers_routing_at_once_never_exceed_a_reps_capacity(pg: Database) -> None:
    settings = make_settings(pg)
    await pool(pg)
    async with pg.sessions.begin() as s:
        leads = await add_leads(s, 90)
    outcomes = await asyncio.gather(
        *(consumer(pg, settings, leads[n::ROUTERS], batch=10) for n in range(ROUTERS))
    )
    every = [outcome for part in outcomes for outcome in part]
    assert every.count("routed") == 15 and every.count("queued") == 75
    held, counters = await owned(pg)
    assert sorted(held.values()) == [5, 5, 5]
    assert counters == held  # the counters the router reads agree with the leads table


async def test_three_consumers_given_the_same_leads_assign_each_exactly_once(
    pg: Database,
) -> None:
    settings = make_settings(pg)
    await pool(pg)
    async with pg.sessions.begin() as s:
        leads = await add_leads(s, 24)
    # As after a rebalance: every consumer has every event; one lead per transaction.
    shuffled = random.Random(7).sample(leads, len(leads))
    outcomes = await asyncio.gather(
        consumer(pg, settings, leads, batch=1),
        consumer(pg, settings, list(reversed(leads)), batch=1),
        consumer(pg, settings, shuffled, batch=1),
    )
    assert sum(part.count("unchanged") for part in outcomes) == 24 * (ROUTERS - 1)
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


async def three_pools(db: Database, settings: Settings, **caps: int) -> dict[str, UUID]:
    """Teams north, south and east of two reps each (weights 1 and 2), routed by country."""
    ids = {}
    async with db.sessions.begin() as s:
        for name in COUNTRY:
            await team(s, name)
        for n, name in enumerate(("ann", "bob", "cy", "dee", "eve", "fay")):
            pool_name = list(COUNTRY)[n // 2]
            ids[name] = await rep(
                s, f"{name}@co.com", pool_name, weight=1 + n % 2, max_open=caps.get(name)
            )
        await activate_rules(s, POOLS, settings)
    return ids


async def test_three_routers_on_three_pools_keep_every_pools_ledger_exact(pg: Database) -> None:
    """Leads of every pool mixed, three routers at once in rounds of 20: each pool's reps end
    within one lead of their weighted share (the ledger moved one lead at a time), every lead
    routed once, the counters right."""
    settings = make_settings(pg)
    ids = await three_pools(pg, settings)
    order = random.Random(3).choices(list(COUNTRY), k=600)
    async with pg.sessions.begin() as s:
        leads = [await add_lead(s, country=COUNTRY[name]) for name in order]

    async def router(part: list[UUID]) -> list[RoutingDecision]:
        decisions = []
        for start in range(0, len(part), 20):
            async with pg.sessions.begin() as s:
                decisions += await route_leads(
                    s, part[start : start + 20], now=NOW, settings=settings
                )
        return decisions

    parts = await asyncio.gather(*(router(leads[n::ROUTERS]) for n in range(ROUTERS)))
    decisions = [d for part in parts for d in part]
    assert len(decisions) == 600 and {d.outcome for d in decisions} == {"routed"}
    held, counters = await owned(pg)
    assert counters == held and sum(held.values()) == 600
    for n, name in enumerate(COUNTRY):
        light, heavy = ids[("ann", "cy", "eve")[n]], ids[("bob", "dee", "fay")[n]]
        routed = order.count(name)
        assert abs(held.get(light, 0) - routed / 3) <= 1, (name, held, routed)
        assert abs(held.get(heavy, 0) - 2 * routed / 3) <= 1, (name, held, routed)
    async with pg.sessions() as s:
        assigned = dict((await s.execute(select(LedgerEntry.rep_id, LedgerEntry.assigned))).all())
    assert assigned == held  # the ledgers counted every lead


@asynccontextmanager
async def holding(
    db: Database, settings: Settings, lead_id: UUID
) -> AsyncIterator[tuple[RoutingDecision, int]]:
    """A router that has routed ``lead_id`` and keeps its transaction (and so its locks) open
    until the block ends; yields the decision and the router's backend pid."""
    async with db.sessions.begin() as session:
        pid = await backend_pid(session)
        decision = await route_lead(session, lead_id, now=NOW, settings=settings)
        yield decision, pid


async def backend_pid(session: AsyncSession) -> int:
    return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def blocked_by(db: Database, pid: int) -> list[int]:
    """The backends that the backend ``pid`` waits for a lock of."""
    async with db.sessions() as s:
        found = await s.scalar(text("SELECT pg_blocking_pids(:pid)"), {"pid": pid})
    return list(found or [])


async def route_alone(
    db: Database, settings: Settings, lead_id: UUID, started: Callable[[int], None]
) -> RoutingDecision:
    """Another router's transaction: routes ``lead_id`` and commits (``started``: its pid)."""
    async with db.sessions.begin() as session:
        started(await backend_pid(session))
        return await route_lead(session, lead_id, now=NOW, settings=settings)


async def test_a_router_of_another_pool_routes_while_one_holds_its_pool(pg: Database) -> None:
    settings = make_settings(pg)
    ids = await three_pools(pg, settings)
    async with pg.sessions.begin() as s:
        north, south = await add_lead(s, country="US"), await add_lead(s, country="ZA")
    async with holding(pg, settings, north) as (first, _):
        assert first.team == "north" and first.outcome == "routed"
        # The north router's transaction is open, its pool's and reps' rows locked: the south
        # router routes and commits all the same, without waiting for it.
        second = await asyncio.wait_for(route_alone(pg, settings, south, lambda _: None), 30)
        assert second.team == "south" and second.owner_id in (ids["cy"], ids["dee"])
        async with pg.sessions() as s:  # committed while the first is still open
            assert await s.scalar(select(Lead.owner_id).where(Lead.id == south)) is not None
            assert await s.scalar(select(Lead.owner_id).where(Lead.id == north)) is None
    async with pg.sessions() as s:
        assert await s.scalar(select(Lead.owner_id).where(Lead.id == north)) == first.owner_id


async def test_routers_of_one_pool_take_turns_and_never_exceed_a_cap(pg: Database) -> None:
    """Ann alone in her team, at most one open lead: the second router waits for the first (the
    lock, seen in pg_blocking_pids), then finds her full and queues its lead; without the lock
    it would have read her count before the first committed and given her a second lead."""
    settings = make_settings(pg)
    async with pg.sessions.begin() as s:
        await team(s, "default")  # where the built-in rules send every lead
        ann = await rep(s, "ann@co.com", "default", max_open=1)
        first_lead, second_lead = await add_lead(s), await add_lead(s)
    pids: list[int] = []
    async with holding(pg, settings, first_lead) as (first, holder):
        assert first.owner_id == ann
        second = asyncio.create_task(route_alone(pg, settings, second_lead, pids.append))
        await eventually(lambda: pids)
        assert await eventually(lambda: blocked_by(pg, pids[0])) == [holder]
        assert not second.done()
    decision = await asyncio.wait_for(second, 30)
    assert decision.outcome == "queued" and "nobody eligible" in decision.reason
    held, counters = await owned(pg)
    assert held == counters == {ann: 1}


async def test_pools_sharing_a_rep_take_turns_on_the_rep_and_keep_the_cap(pg: Database) -> None:
    """Bob is in north and south, at most one open lead; a north router holds him, so a south
    router waits for his row (not for north's pool), then sees his lead and passes him over."""
    settings = make_settings(pg)
    async with pg.sessions.begin() as s:
        for name in COUNTRY:
            await team(s, name)
        bob = await rep(s, "bob@co.com", "north", "south", max_open=1)
        cy = await rep(s, "cy@co.com", "south")
        await activate_rules(s, POOLS, settings)
        north, south = await add_lead(s, country="US"), await add_lead(s, country="ZA")
    pids: list[int] = []
    async with holding(pg, settings, north) as (first, holder):
        assert first.owner_id == bob
        second = asyncio.create_task(route_alone(pg, settings, south, pids.append))
        await eventually(lambda: pids)
        assert await eventually(lambda: blocked_by(pg, pids[0])) == [holder]
    decision = await asyncio.wait_for(second, 30)
    assert decision.owner_id == cy and decision.team == "south"
    skipped = {c["name"]: c.get("reason") for c in decision.candidates}
    assert skipped["Bob"] == "at_capacity"
    held, counters = await owned(pg)
    assert held == counters == {bob: 1, cy: 1}


async def test_a_later_step_that_needs_locks_before_those_held_routes_right_and_says_so(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Two calls in one transaction, the second needing a pool and reps the first did not lock:
    still exact (it takes them), but no longer in the one global order, so it is logged."""
    settings = make_settings(pg)
    ids = await three_pools(pg, settings)
    async with pg.sessions.begin() as s:
        south, north = await add_lead(s, country="ZA"), await add_lead(s, country="US")
    async with pg.sessions.begin() as s:
        first = await route_lead(s, south, now=NOW, settings=settings)
        assert "routing locks taken after others" not in caplog.text
        second = await route_lead(s, north, now=NOW, settings=settings)
    assert first.owner_id in (ids["cy"], ids["dee"])
    assert second.owner_id in (ids["ann"], ids["bob"])
    assert "routing locks taken after others in one transaction" in caplog.text
    held, counters = await owned(pg)
    assert held == counters and sum(held.values()) == 2
