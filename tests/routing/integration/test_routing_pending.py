"""Qualified leads routed after scoring's commit (services/routing/pending.py): what is marked,
what a crashed process leaves, and two scoring processes routing the same pending leads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from sqlalchemy import func, select, update

from services.processes import RoutingAfterScoring
from services.routing import store
from services.routing.models import Assignment, Rep
from services.routing.pending import BATCH, PendingRouter, mark_pending, route_pending
from services.routing.reassign import release_leads
from services.routing.store import forget_cached_directories, touch_directory
from shared.config import Settings
from shared.models import Inquiry, Lead, OutboxMessage
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_lead, add_leads, capped_pool, rep, team


async def statuses(db: Database, leads: list[UUID]) -> list[str | None]:
    async with db.sessions() as s:
        rows = dict((await s.execute(select(Lead.id, Lead.routing_status))).all())
    return [rows[lead] for lead in leads]


async def staged(db: Database, kind: str) -> list[str]:
    async with db.sessions() as s:
        query = select(OutboxMessage.aggregate_id).where(OutboxMessage.type == kind)
        return [str(subject) for subject in await s.scalars(query)]


async def test_scoring_marks_qualified_leads_pending_but_not_test_or_routed_ones(db: Database):
    settings = make_settings(db)
    forget_cached_directories()
    async with db.sessions.begin() as s:
        fresh, test_lead, routed, recycled = [await add_lead(s) for _ in range(4)]
        await s.execute(update(Lead).where(Lead.id == test_lead).values(is_test=True))
        await s.execute(update(Lead).where(Lead.id == routed).values(routing_status="routed"))
        await s.execute(update(Lead).where(Lead.id == recycled).values(routing_status="closed"))
        await mark_pending(s, [fresh, test_lead, routed, recycled])  # no team: routing is off
    assert await statuses(db, [fresh, test_lead, routed, recycled]) == [
        None,
        None,
        "routed",
        "closed",
    ]
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
    async with db.sessions.begin() as s:
        await mark_pending(s, [fresh, test_lead, routed, recycled])
    assert await statuses(db, [fresh, test_lead, routed, recycled]) == [
        "pending",
        None,
        "routed",
        "pending",
    ]
    taken, decisions = await route_pending(db.sessions, settings, now=NOW)
    assert taken == 2 and [d.outcome for d in decisions] == ["routed", "routed"]
    assert await statuses(db, [fresh, recycled]) == ["routed", "routed"]
    assert sorted(await staged(db, "lead.routed")) == sorted([str(fresh), str(recycled)])
    assert await route_pending(db.sessions, settings, now=NOW) == (0, [])


async def test_no_lead_is_marked_pending_while_the_directory_has_no_team(db: Database):
    forget_cached_directories()
    async with db.sessions.begin() as s:
        await touch_directory(s)  # a directory token, as after an account import, but no team
        lead = await add_lead(s)
        await mark_pending(s, [lead])
    assert await statuses(db, [lead]) == [None]
    async with db.sessions.begin() as s:
        await team(s, "default")
        await mark_pending(s, [lead])
    assert await statuses(db, [lead]) == ["pending"]


async def test_a_lead_closed_before_its_routing_or_with_routing_off_is_no_longer_pending(
    db: Database,
):
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
        closed, waiting = await add_lead(s), await add_lead(s)
        await mark_pending(s, [closed, waiting])
        # The next scoring batch recycled one before the routing ran.
        await s.execute(update(Lead).where(Lead.id == closed).values(stage="recycled"))
    async with db.sessions.begin() as s:
        await s.execute(update(Lead).where(Lead.id == waiting).values(routing_status=None))
        await mark_pending(s, [waiting])
    forget_cached_directories()
    async with db.sessions.begin() as s:
        await s.execute(update(Rep).values(status="deactivated"))
    taken, [decision] = await route_pending(db.sessions, settings, now=NOW)
    assert taken == 2 and decision.lead_id == waiting and decision.outcome == "queued"
    assert await statuses(db, [closed, waiting]) == [None, "queued"]
    assert await staged(db, "lead.routed") == []
    assert await staged(db, "lead.queued") == [str(waiting)]


async def test_a_lead_that_cannot_be_routed_is_marked_failed_and_holds_up_nobody(db: Database):
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
        poison, fine = await add_lead(s), await add_lead(s)
        # Stored by hand: a submission that is a list, not an object (nothing in the API does it).
        await s.execute(
            update(Inquiry).where(Inquiry.lead_id == poison).values(submission=["not", "a", "map"])
        )
        await mark_pending(s, [poison, fine])
    taken, [decision] = await route_pending(db.sessions, settings, now=NOW)
    assert taken == 2 and decision.lead_id == fine and decision.outcome == "routed"
    assert await statuses(db, [poison, fine]) == ["failed", "routed"]
    assert await route_pending(db.sessions, settings, now=NOW) == (0, [])


@contextlib.asynccontextmanager
async def running_router(
    db: Database, settings: Settings
) -> AsyncIterator[tuple[PendingRouter, asyncio.Queue[None]]]:
    rounds: asyncio.Queue[None] = asyncio.Queue()
    router = PendingRouter(db.sessions, settings, on_routed=lambda: rounds.put_nowait(None))
    task = asyncio.create_task(router.run())
    try:
        yield router, rounds
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_router_is_woken_after_a_commit_that_marked_leads_and_only_then(db: Database):
    """A scoring commit that marked no lead pending costs the router no round (each had one,
    a transaction each, on every scoring batch while routing was off)."""
    forget_cached_directories()
    woken: list[str] = []
    async with db.sessions.begin() as s:
        lead = await add_lead(s)
        assert await mark_pending(s, [lead], wake=lambda: woken.append("off")) == 0
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
    with contextlib.suppress(RuntimeError):
        async with db.sessions.begin() as s:
            assert await mark_pending(s, [lead], wake=lambda: woken.append("rolled back")) == 1
            raise RuntimeError
    async with db.sessions.begin() as s:
        assert await mark_pending(s, [lead], wake=lambda: woken.append("committed")) == 1
        assert woken == []  # not before the commit: the router would find nothing yet
    assert woken == ["committed"]
    async with db.sessions.begin() as s:  # pending already: nothing marked
        assert await mark_pending(s, [lead], wake=lambda: woken.append("again")) == 0
    assert woken == ["committed"]


async def test_scorings_routing_hook_wakes_its_router_once_its_batch_commits(db: Database):
    settings = make_settings(db)
    forget_cached_directories()
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
        lead, closed = await add_lead(s), await add_lead(s)
    router = PendingRouter(db.sessions, settings, on_routed=lambda: None)
    hook = RoutingAfterScoring(router)
    async with db.sessions.begin() as s:
        await hook(s, [], [{"lead_id": closed, "to_stage": "lost"}], settings=settings, now=NOW)
    assert not router.wakeup.is_set()
    async with db.sessions.begin() as s:
        await hook(s, [], [{"lead_id": lead, "to_stage": "mql"}], settings=settings, now=NOW)
        assert not router.wakeup.is_set()
    assert router.wakeup.is_set()
    assert await statuses(db, [lead]) == ["pending"]


async def test_what_a_crashed_process_left_pending_is_routed_by_the_next_router(db: Database):
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
        left = await add_lead(s)
        await mark_pending(s, [left])  # committed; the process died before routing it
    async with running_router(db, settings) as (router, rounds):
        await asyncio.wait_for(rounds.get(), 10)  # its first round, without being woken
        assert await statuses(db, [left]) == ["routed"]
        async with db.sessions.begin() as s:
            woken = await add_lead(s)
            await mark_pending(s, [woken])
        router.notify()  # as a scoring commit that marked leads pending does
        await asyncio.wait_for(rounds.get(), 10)
        assert await statuses(db, [woken]) == ["routed"]


async def test_scoring_is_held_back_while_a_round_leaves_leads_pending(db: Database):
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await team(s, "default")
        await rep(s, "ann@co.com", "default")
        leads = await add_leads(s, BATCH + 10)
        await mark_pending(s, leads)
    rounds: asyncio.Queue[bool] = asyncio.Queue()  # after each round: may scoring poll?
    router = PendingRouter(db.sessions, settings)
    router.on_routed = lambda: rounds.put_nowait(router.caught_up.is_set())
    assert router.caught_up.is_set()  # nothing known yet: scoring polls
    task = asyncio.create_task(router.run())
    try:
        full, rest = [await asyncio.wait_for(rounds.get(), 10) for _ in range(2)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (full, rest) == (False, True)  # a full round: scoring waits; the rest: it goes on
    assert "pending" not in await statuses(db, leads)


async def test_the_router_reads_the_directory_when_it_starts_not_in_its_first_round(
    db: Database,
):
    async with db.sessions.begin() as s:
        await team(s, "default")
    forget_cached_directories()
    task = asyncio.create_task(PendingRouter(db.sessions, make_settings(db)).run())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not store._cache:  # no lead is pending: no round would read it
            assert asyncio.get_running_loop().time() < deadline, "directory never read"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    [directory] = store._cache.values()
    assert [t.name for t in directory.teams.values()] == ["default"]


async def test_three_scoring_processes_route_the_same_pending_leads_once_within_capacity(
    pg: Database,
) -> None:
    settings = make_settings(pg)
    async with pg.sessions.begin() as s:
        await capped_pool(s, max_open=40)
        leads = await add_leads(s, 300)
        await mark_pending(s, leads)

    async def process() -> list[str]:
        outcomes = []
        while True:
            taken, decisions = await route_pending(pg.sessions, settings, now=NOW, limit=20)
            outcomes += [d.outcome for d in decisions]
            if not taken:
                return outcomes

    parts = await asyncio.gather(process(), process(), process())
    assert sum(1 for part in parts if part) >= 2  # more than one took part
    assert sorted(o for part in parts for o in part) == ["queued"] * 180 + ["routed"] * 120
    async with pg.sessions() as s:
        per_lead = (
            await s.execute(select(Assignment.lead_id, func.count()).group_by(Assignment.lead_id))
        ).all()
        loads = sorted((await s.scalars(select(Rep.open_leads))).all())
    assert len(per_lead) == 300 and {count for _, count in per_lead} == {1}
    assert loads == [40, 40, 40]


async def test_releases_in_scoring_while_the_router_routes_keep_the_counts_right(
    pg: Database,
) -> None:
    """Scoring's transactions release closed leads without the routing lock while the router
    routes: no deadlock, no count lost, caps never exceeded."""
    settings = make_settings(pg)
    async with pg.sessions.begin() as s:
        await capped_pool(s, max_open=30)
        first = await add_leads(s, 60)
        await mark_pending(s, first)
    await route_pending(pg.sessions, settings, now=NOW)  # 60 routed: 20 each
    async with pg.sessions.begin() as s:
        later = await add_leads(s, 120)
        await mark_pending(s, later)

    async def router() -> None:
        while (await route_pending(pg.sessions, settings, now=NOW, limit=10))[0]:
            pass

    async def scoring() -> None:  # closes the first leads, a few per transaction
        for start in range(0, len(first), 4):
            async with pg.sessions.begin() as s:
                chunk = first[start : start + 4]
                await s.execute(update(Lead).where(Lead.id.in_(chunk)).values(stage="lost"))
                await release_leads(s, chunk)

    await asyncio.gather(router(), scoring())
    async with pg.sessions() as s:
        held = dict(
            (
                await s.execute(
                    select(Lead.owner_id, func.count())
                    .where(Lead.routing_status == "routed")
                    .group_by(Lead.owner_id)
                )
            ).all()
        )
        counters = dict((await s.execute(select(Rep.id, Rep.open_leads))).all())
    assert counters == held
    assert all(count <= 30 for count in counters.values())
    assert sum(counters.values()) >= 30  # the later leads got the room the first ones freed
