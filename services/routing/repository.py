"""The owner directory, read from the tables and cached per process until its token changes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.accounts import AccountIndex, AccountInfo
from services.routing.directory import Directory, RepInfo, TeamInfo
from services.routing.hours import WorkingHours
from services.routing.models import (
    Account,
    LedgerEntry,
    Membership,
    PoolState,
    Rep,
    RoutingState,
    Team,
)
from services.routing.rules import BUILT_IN, compile_routing
from shared.cosign.models import CosignedVersion
from shared.db import upsert
from shared.ids import new_id
from shared.models import table_of

reps_t, teams_t, members_t = table_of(Rep), table_of(Team), table_of(Membership)
accounts_t, versions_t, state_t = (
    table_of(Account),
    table_of(CosignedVersion),
    table_of(RoutingState),
)
pools_t, ledger_t = table_of(PoolState), table_of(LedgerEntry)
LOCKED = "routing.locked"
KIND = "routing"
"""The routing rules' kind among the co-signed versions (``versions.ROUTING``)."""
_cache: dict[tuple[str, str], Directory] = {}


def forget_cached_directories() -> None:
    """As after a restart: the next routing reads the directory from the database."""
    _cache.clear()


async def touch_directory(session: AsyncSession) -> None:
    """After any change to reps, teams, accounts or rulesets: caches elsewhere go stale."""
    token = str(new_id())
    stmt = upsert(session, state_t).values(id=1, directory_token=token)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["id"], set_={"directory_token": token})
    )


async def routing_off(session: AsyncSession) -> bool:
    """No team exists (routing is off until one does). Read without the routing lock, so that
    scoring batches do not queue on it for nothing; a team created meanwhile takes effect from
    the next batch, as if this one had run a moment earlier."""
    query = select(state_t.c.directory_token).where(state_t.c.id == 1)
    token = await session.scalar(query)
    return token is None or not (await directory(session, str(token))).teams


async def directory(session: AsyncSession, token: str) -> Directory:
    key = (str(session.get_bind().engine.url), token)
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
        await session.execute(
            select(versions_t.c.version, versions_t.c.content).where(
                versions_t.c.kind == KIND, versions_t.c.status == "active"
            )
        )
    ).one_or_none()
    routing = compile_routing(active.content if active else BUILT_IN)
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
