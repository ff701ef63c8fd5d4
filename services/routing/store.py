"""Routing's queries: the owner directory, read from the tables and cached per process until
its token changes, and the changes to it (reps, teams, accounts, availability), each of which
bumps the token so that every process's cached copy is refreshed on its next routing. The caller
owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.accounts import AccountIndex, AccountInfo, normalise_domain
from services.routing.directory import Directory, RepInfo, TeamInfo
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
from services.routing.schemas import AccountIn, RepIn, TeamIn
from services.routing.txn import empty_pool
from shared.business_hours import WorkingHours
from shared.cosign.models import CosignedVersion
from shared.db import rowcount, upsert
from shared.ids import new_id
from shared.models import Lead, table_of

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
    """No team exists (routing is off until one does). Read without any routing lock, so that
    scoring batches do not queue on one for nothing; a team created meanwhile takes effect from
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


class DirectoryInvalid(ValueError):
    """A change that names something that does not exist; ``field`` says which input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def rep_id_of(session: AsyncSession, email: str | None, field: str) -> UUID | None:
    if not email:
        return None
    rep_id = await session.scalar(select(reps_t.c.id).where(reps_t.c.email == email.lower()))
    if rep_id is None:
        raise DirectoryInvalid(field, f"no rep with email {email}")
    return rep_id


async def put_team(session: AsyncSession, team: TeamIn, now: datetime) -> UUID:
    manager = await rep_id_of(session, team.manager_email, "manager_email")
    values = team.model_dump(exclude={"manager_email"}) | {"manager_id": manager, "updated_at": now}
    existing = await session.scalar(select(teams_t.c.id).where(teams_t.c.name == team.name))
    if existing is None:
        existing = new_id()
        await session.execute(teams_t.insert().values(id=existing, created_at=now, **values))
        # The pool's row, which routers lock while they route in it (txn.py).
        await session.execute(pools_t.insert().values(**empty_pool(existing, now)))
    else:
        await session.execute(update(teams_t).where(teams_t.c.id == existing).values(**values))
    await touch_directory(session)
    return existing


async def put_rep(session: AsyncSession, rep: RepIn, now: datetime) -> UUID:
    """Create or update (by email). Team membership becomes exactly ``rep.teams``."""
    manager = await rep_id_of(session, rep.manager_email, "manager_email")
    team_ids = []
    for name in rep.teams:
        team_id = await session.scalar(select(teams_t.c.id).where(teams_t.c.name == name))
        if team_id is None:
            raise DirectoryInvalid("teams", f"no team named {name!r}")
        team_ids.append(team_id)
    values: dict[str, Any] = rep.model_dump(exclude={"teams", "manager_email"})
    values |= {"manager_id": manager, "updated_at": now}
    existing = await session.scalar(select(reps_t.c.id).where(reps_t.c.email == rep.email))
    if existing is None:
        existing = new_id()
        await session.execute(
            reps_t.insert().values(
                id=existing, created_at=now, open_leads=0, assigned_today=0, **values
            )
        )
    else:
        await session.execute(update(reps_t).where(reps_t.c.id == existing).values(**values))
        await session.execute(delete(members_t).where(members_t.c.rep_id == existing))
    if team_ids:
        await session.execute(
            members_t.insert(), [{"team_id": t, "rep_id": existing} for t in team_ids]
        )
    await touch_directory(session)
    return existing


async def set_availability(
    session: AsyncSession,
    email: str,
    now: datetime,
    *,
    status: str | None = None,
    away_until: datetime | None = None,
    back: bool = False,
) -> UUID:
    rep_id = await rep_id_of(session, email, "email")
    assert rep_id is not None
    values: dict[str, Any] = {"updated_at": now}
    if status is not None:
        values["status"] = status
    if away_until is not None or back:
        values["away_until"] = None if back else away_until
    await session.execute(update(reps_t).where(reps_t.c.id == rep_id).values(**values))
    await touch_directory(session)
    return rep_id


async def put_account(session: AsyncSession, account: AccountIn, now: datetime) -> UUID:
    """Create or update, by domain when given, else by exact name."""
    owner = await rep_id_of(session, account.owner_email, "owner_email")
    domain = normalise_domain(account.domain) if account.domain else None
    values = {"name": account.name, "domain": domain, "owner_id": owner, "updated_at": now}
    key = accounts_t.c.domain == domain if domain else accounts_t.c.name == account.name
    existing = await session.scalar(select(accounts_t.c.id).where(key))
    if existing is None:
        existing = new_id()
        await session.execute(accounts_t.insert().values(id=existing, created_at=now, **values))
    else:
        await session.execute(
            update(accounts_t).where(accounts_t.c.id == existing).values(**values)
        )
    await touch_directory(session)
    return existing


async def delete_account(session: AsyncSession, account_id: UUID) -> bool:
    result = await session.execute(delete(accounts_t).where(accounts_t.c.id == account_id))
    await touch_directory(session)
    return bool(rowcount(result))


async def recount_open_leads(session: AsyncSession, closed_stages: tuple[str, ...]) -> int:
    """Rebuild each rep's open-lead count from the leads table; returns the reps changed. Every
    rep's row is locked first, in id order (as routers lock them, txn.py), so no routing or
    release changes a count between the counting and the writing."""
    locked = select(reps_t.c.id, reps_t.c.open_leads).order_by(reps_t.c.id)
    stored = (await session.execute(locked.with_for_update(key_share=True))).all()
    leads = table_of(Lead)
    counts: dict[UUID, int] = dict(
        (
            await session.execute(
                select(leads.c.owner_id, func.count())
                .where(leads.c.owner_id.is_not(None), leads.c.stage.not_in(closed_stages))
                .group_by(leads.c.owner_id)
            )
        ).all()
    )
    changed = 0
    for rep_id, open_leads in stored:
        if counts.get(rep_id, 0) != open_leads:
            changed += 1
            await session.execute(
                update(reps_t).where(reps_t.c.id == rep_id).values(open_leads=counts.get(rep_id, 0))
            )
    return changed


async def lock_reps(session: AsyncSession, emails: list[str]) -> None:
    """Lock the rows of the reps with these emails, in id order (as routers lock them, txn.py),
    before changing several in one transaction (an import), so as not to deadlock with one."""
    if emails:
        query = select(reps_t.c.id).where(reps_t.c.email.in_(sorted({e.lower() for e in emails})))
        await session.execute(query.order_by(reps_t.c.id).with_for_update(key_share=True))
