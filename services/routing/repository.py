"""Routing's reads and writes: the directory (cached per process), loads, ledgers, the lock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import ledger as fair
from services.routing.accounts import AccountIndex, AccountInfo
from services.routing.directory import Directory, RepInfo, RepLoad, TeamInfo
from services.routing.hours import WorkingHours
from services.routing.models import (
    Account,
    LedgerEntry,
    Membership,
    PoolState,
    Rep,
    RoutingRuleset,
    RoutingState,
    Team,
)
from services.routing.rules import BUILT_IN, compile_routing
from shared.db import insert_ignoring_conflicts, upsert
from shared.ids import new_id

reps_t, teams_t, members_t = Rep.__table__, Team.__table__, Membership.__table__
accounts_t, rulesets_t, state_t = (
    Account.__table__,
    RoutingRuleset.__table__,
    RoutingState.__table__,
)
pools_t, ledger_t = PoolState.__table__, LedgerEntry.__table__
LOCKED = "routing.locked"
_cache: dict[tuple[str, str], Directory] = {}


def forget_cached_directories() -> None:
    """As after a restart: the next routing reads the directory from the database."""
    _cache.clear()


async def lock_routing(session: AsyncSession) -> str:
    """Serialize routing transactions; returns the directory token. Once per transaction.

    Why one lock for all of routing: a scoring batch routes many leads in ONE transaction, to
    pools in event order. Per-pool or per-rep row locks would then be taken in different orders
    by two consumers and deadlock; one row taken first makes the order fixed. Held to commit, it
    is what guarantees that two consumers never both see a rep under capacity and both give it
    a lead, and never both assign one lead (the lead's row lock, taken before, covers that too).
    """
    token = session.info.get(LOCKED)
    if token is not None:
        return str(token)
    query = select(state_t.c.directory_token).where(state_t.c.id == 1).with_for_update()
    token = await session.scalar(query)
    if token is None:
        await session.execute(
            insert_ignoring_conflicts(session, state_t).values(id=1, directory_token=str(new_id()))
        )
        token = await session.scalar(query)
    session.info[LOCKED] = token
    return str(token)


async def touch_directory(session: AsyncSession) -> None:
    """After any change to reps, teams, accounts or rulesets: caches elsewhere go stale."""
    token = str(new_id())
    stmt = upsert(session, state_t).values(id=1, directory_token=token)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"directory_token": token})
    )


async def directory(session: AsyncSession, token: str) -> Directory:
    key = (str(session.get_bind().url), token)
    cached = _cache.get(key)
    if cached is None:
        cached = await load_directory(session, token)
        if len(_cache) > 16:
            _cache.clear()
        _cache[key] = cached
    return cached


async def load_directory(session: AsyncSession, token: str) -> Directory:
    members: dict[UUID, list[UUID]] = {}
    for team_id, rep_id in await session.execute(select(members_t)):
        members.setdefault(team_id, []).append(rep_id)
    teams = {
        row.id: TeamInfo(
            row.id,
            row.name,
            row.strategy,
            row.outside_hours,
            row.kind,
            row.manager_id,
            tuple(sorted(members.get(row.id, []))),
        )
        for row in await session.execute(select(teams_t))
    }
    reps = {row.id: rep_info(row) for row in await session.execute(select(reps_t))}
    accounts = [
        AccountInfo(r.id, r.name, r.domain, r.owner_id)
        for r in await session.execute(select(accounts_t))
    ]
    active = (
        await session.execute(select(rulesets_t).where(rulesets_t.c.active.is_(True)))
    ).one_or_none()
    routing = compile_routing(active.text if active else BUILT_IN)
    version = active.version if active else None
    return Directory(token, reps, teams, AccountIndex(accounts), routing, version)


def rep_info(row: Any) -> RepInfo:
    return RepInfo(
        id=row.id,
        email=row.email,
        name=row.name,
        weight=row.weight,
        hours=WorkingHours.of(row.time_zone, row.working_hours or {}),
        status=row.status,
        away_until=row.away_until,
        max_open=row.max_open,
        max_per_day=row.max_per_day,
        roles=frozenset(row.roles or ()),
        territories=frozenset(row.territories or ()),
        segments=frozenset(row.segments or ()),
        languages=frozenset(row.languages or ()),
        products=frozenset(row.products or ()),
        manager_id=row.manager_id,
    )


async def loads_and_ledger(
    session: AsyncSession, team: TeamInfo | None, extra: Iterable[UUID] = ()
) -> tuple[dict[UUID, RepLoad], fair.PoolLedger | None]:
    ids = sorted({*(team.members if team else ()), *extra})
    loads: dict[UUID, RepLoad] = {}
    if ids:
        query = select(
            reps_t.c.id, reps_t.c.open_leads, reps_t.c.assigned_day, reps_t.c.assigned_today
        ).where(reps_t.c.id.in_(ids))
        for row in await session.execute(query):
            loads[row.id] = RepLoad(row.open_leads, row.assigned_day, row.assigned_today)
    if team is None:
        return loads, None
    return loads, await read_ledger(session, team.id)


async def read_ledger(session: AsyncSession, team_id: UUID) -> fair.PoolLedger:
    pool = (await session.execute(select(pools_t).where(pools_t.c.team_id == team_id))).first()
    standings = {
        row.rep_id: fair.Standing(row.credited, row.assigned, row.window_count)
        for row in await session.execute(select(ledger_t).where(ledger_t.c.team_id == team_id))
    }
    if pool is None:
        return fair.PoolLedger(standings=standings)
    roster = tuple((UUID(str(rep)), int(weight)) for rep, weight in pool.roster)
    return fair.PoolLedger(roster, pool.position, pool.routed, standings)


async def write_ledger(
    session: AsyncSession,
    team_id: UUID,
    before: fair.PoolLedger,
    after: fair.PoolLedger,
    now: datetime,
) -> None:
    """Store what changed: the pool's window, and every standing that differs."""
    roster = [[str(rep), weight] for rep, weight in after.roster]
    values = {
        "roster": roster,
        "position": after.position,
        "routed": after.routed,
        "updated_at": now,
    }
    stmt = upsert(session, pools_t).values(team_id=team_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["team_id"], set_=values))
    changed = [
        {"team_id": team_id, "rep_id": rep, "credited": s.credited, "assigned": s.assigned}
        | {"window_count": s.window_count}
        for rep, s in after.standings.items()
        if before.standings.get(rep) != s
    ]
    if changed:
        stmt = upsert(session, ledger_t)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=["team_id", "rep_id"],
                set_={c: stmt.excluded[c] for c in ("credited", "assigned", "window_count")},
            ),
            changed,
        )


async def count_assignment(session: AsyncSession, rep: RepInfo, now: datetime) -> None:
    day = rep.hours.local_day(now)
    same_day = reps_t.c.assigned_day == day
    await session.execute(
        update(reps_t)
        .where(reps_t.c.id == rep.id)
        .values(
            open_leads=reps_t.c.open_leads + 1,
            assigned_today=case((same_day, reps_t.c.assigned_today + 1), else_=1),
            assigned_day=day,
        )
    )


async def release(session: AsyncSession, rep_id: UUID) -> None:
    """The rep no longer holds one of its leads (reassigned away, or closed)."""
    await session.execute(
        update(reps_t)
        .where(reps_t.c.id == rep_id, reps_t.c.open_leads > 0)
        .values(open_leads=reps_t.c.open_leads - 1)
    )
