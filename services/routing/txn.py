"""Routing's state for one database transaction: its locks, then the loads and ledgers read
under them and written once, when the transaction commits (so are the assignment and history
rows).

What is locked, and why. Deciding about a lead reads, and may change, the fairness ledger of the
pool it is routed in (its ``routing_pools`` row and ``routing_ledger`` rows) and the loads of the
reps it may be given to (``routing_reps``: open leads, the day's count). A rep may be in several
pools and an account owner is given leads outside any pool, so capacity is kept per rep, not per
pool. ``take`` therefore locks the pool rows and the rep rows the decisions of a step need
(``router.needs``), and reads the ledgers and loads once the locks are granted. Held to commit,
the locks are what guarantees that two routers never both see a rep under capacity and both give
it a lead, and that a pool's ledger moves one lead at a time, as if every lead had been routed
one after the other; the lead's own row lock guards against routing it twice. Routers whose
pools and reps do not overlap never wait for each other; two on one pool, or on pools sharing an
eligible rep, take turns. ``FOR NO KEY UPDATE``: what an ``UPDATE`` of these rows takes, so
that inserting a row that refers to a rep (a membership, an account) is not held up.

Deadlocks. A transaction takes lead rows first (in id order, as scoring does), then routing locks
in one global order: pools by team id, then reps by rep id, each step's locks in one go. No
transaction then waits for a lock that sorts before one it holds, provided it takes its routing
locks in one step: the entry points plan every lead first and call ``take`` once
(``route_leads``, ``reassign_leads``; scoring's releases go in the same step). A later step in
the same transaction takes only what it lacks, in order, but after locks already held: still
exact, but it could deadlock with another router (PostgreSQL would abort one), so it is logged.

Others write these rows too, always with the row's lock: scoring's transactions release closed
leads (``assign.release_leads``: counts lowered as deltas, reps in id order, after any routing
step of theirs), so a release waits for a router holding that rep, or the router for it; a
directory change updates a rep row (an import locks its reps in id order first).
``routing_state`` (row 1) only names the directory's version now: it is read, not locked.

On SQLite, ``BEGIN IMMEDIATE`` serializes writers; no row is locked (SQLite has no ``FOR
UPDATE``; SQLAlchemy renders none there) and the same reads follow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prometheus_client import Histogram
from sqlalchemy import Integer, String, bindparam, event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from services.routing import ledger as fair
from services.routing.directory import RepLoad
from services.routing.models import LedgerEntry, PoolState, Rep, RoutingState
from services.routing.router import Needs
from shared.db import among, insert_ignoring_conflicts, insert_many, upsert
from shared.ids import new_id
from shared.models import table_of

KEY = "leadflow.routing"
reps_t, state_t = table_of(Rep), table_of(RoutingState)
pools_t, ledger_t = table_of(PoolState), table_of(LedgerEntry)
log = logging.getLogger(__name__)
LOCK_WAIT = Histogram(
    "leadflow_routing_lock_seconds",
    "Time a routing step took to lock its pools' and reps' rows (two statements; beyond a"
    " fraction of a millisecond, waiting for another router on the same pool or reps)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class UnlockedRep(RuntimeError):
    """A decision gave a lead to a rep whose row the step had not locked (``router.needs`` and
    ``router.route`` disagree): refused, since the rep's capacity could be exceeded."""


@dataclass
class RoutingTxn:
    token: str
    loads: dict[UUID, RepLoad] = field(default_factory=dict)
    """The reps locked in this transaction, with their loads as read under the lock and as
    changed since."""
    opened: dict[UUID, int] = field(default_factory=dict)
    """Open-lead count changes per rep, written as deltas."""
    days: dict[UUID, tuple[str, int]] = field(default_factory=dict)
    ledgers: dict[UUID, fair.PoolLedger] = field(default_factory=dict)
    """The pools locked in this transaction, with their ledgers."""
    stored: dict[UUID, fair.PoolLedger] = field(default_factory=dict)
    now: datetime | None = None
    rows: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    """Assignment and history rows, inserted together (one statement per table)."""

    def add(self, table: Any, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def assign(self, rep: UUID, day: str) -> None:
        load = self.loads.get(rep)
        if load is None:
            raise UnlockedRep(f"rep {rep} was chosen without its row locked")
        today = load.today + 1 if load.day == day else 1
        self.loads[rep] = RepLoad(load.open_leads + 1, day, today)
        self.opened[rep] = self.opened.get(rep, 0) + 1
        self.days[rep] = (day, today)

    def release(self, rep: UUID) -> None:
        load = self.loads.get(rep)
        if load is None:
            raise UnlockedRep(f"rep {rep} was released without its row locked")
        self.loads[rep] = RepLoad(max(load.open_leads - 1, 0), load.day, load.today)
        self.opened[rep] = self.opened.get(rep, 0) - 1


async def begin(session: AsyncSession) -> RoutingTxn:
    """This transaction's routing state (made once per transaction), with the directory's
    current version. Takes no lock: ``take`` does."""
    txn = session.info.get(KEY)
    if txn is not None:
        return txn
    query = select(state_t.c.directory_token).where(state_t.c.id == 1)
    token = await session.scalar(query)
    if token is None:
        await session.execute(
            insert_ignoring_conflicts(session, state_t).values(id=1, directory_token=str(new_id()))
        )
        token = await session.scalar(query)
    txn = session.info[KEY] = RoutingTxn(str(token))
    return txn


async def take(session: AsyncSession, txn: RoutingTxn, needs: Iterable[Needs]) -> None:
    """Lock what ``needs`` name and this transaction does not hold yet — pools in team id
    order, then reps in rep id order — and read their ledgers and loads (three statements;
    ``leadflow_routing_lock_seconds`` times the two that lock)."""
    wanted = Needs().union(needs)
    pools = sorted(wanted.pools - txn.ledgers.keys())
    reps = sorted(wanted.reps - txn.loads.keys())
    if not pools and not reps:
        return
    if _out_of_order(txn, pools, reps):
        log.warning(
            "routing locks taken after others in one transaction (%d pools, %d reps): "
            "a deadlock with another router is possible",
            len(pools),
            len(reps),
        )
    waited = 0.0
    if pools:
        started = time.perf_counter()
        rows = await _lock_pools(session, pools)
        waited += time.perf_counter() - started
        ledgers = await _ledgers(session, pools, rows)
        txn.ledgers |= ledgers
        txn.stored |= ledgers
    if reps:
        query = (
            select(reps_t.c.id, reps_t.c.open_leads, reps_t.c.assigned_day, reps_t.c.assigned_today)
            .where(among(session, reps_t.c.id, reps))
            .order_by(reps_t.c.id)
            .with_for_update(key_share=True)
        )
        started = time.perf_counter()
        loaded = (await session.execute(query)).all()
        waited += time.perf_counter() - started
        for row in loaded:
            txn.loads[row.id] = RepLoad(row.open_leads, row.assigned_day, row.assigned_today)
    LOCK_WAIT.observe(waited)


def _out_of_order(txn: RoutingTxn, pools: list[UUID], reps: list[UUID]) -> bool:
    """Whether these locks sort before one the transaction holds (see the module's docstring)."""
    if pools and (txn.loads or (txn.ledgers and pools[0].int < max(p.int for p in txn.ledgers))):
        return True
    return bool(reps and txn.loads and reps[0].int < max(r.int for r in txn.loads))


async def _lock_pools(session: AsyncSession, team_ids: list[UUID]) -> dict[UUID, Any]:
    """The pools' rows, locked in team id order. A team without its row (made by hand:
    ``put_team`` makes it, migration 0017 made the older ones) gets one."""
    query = (
        select(pools_t)
        .where(among(session, pools_t.c.team_id, team_ids))
        .order_by(pools_t.c.team_id)
        .with_for_update(key_share=True)
    )
    pools = {row.team_id: row for row in await session.execute(query)}
    if missing := [team for team in team_ids if team not in pools]:
        await session.execute(
            insert_ignoring_conflicts(session, pools_t),
            [empty_pool(team, datetime.now(UTC)) for team in missing],
        )
        again = query.where(among(session, pools_t.c.team_id, missing))
        pools |= {row.team_id: row for row in await session.execute(again)}
    return pools


async def _ledgers(
    session: AsyncSession, team_ids: list[UUID], pools: dict[UUID, Any]
) -> dict[UUID, fair.PoolLedger]:
    """The pools' ledgers: their rows (``pools``) and the reps' standings in them."""
    standings: dict[UUID, dict[UUID, fair.Standing]] = {team: {} for team in team_ids}
    query = select(ledger_t).where(among(session, ledger_t.c.team_id, team_ids))
    for row in await session.execute(query):
        standings[row.team_id][row.rep_id] = fair.Standing(
            row.credited, row.assigned, row.window_count
        )
    ledgers = {}
    for team_id in team_ids:
        pool = pools.get(team_id)
        if pool is None:
            ledgers[team_id] = fair.PoolLedger(standings=standings[team_id])
            continue
        roster = tuple((UUID(str(rep)), int(weight)) for rep, weight in pool.roster)
        ledgers[team_id] = fair.PoolLedger(roster, pool.position, pool.routed, standings[team_id])
    return ledgers


def empty_pool(team_id: UUID, now: datetime) -> dict[str, Any]:
    """The row of a pool that has seen no lead (its ledger reads as a pool without a row did)."""
    return {"team_id": team_id, "roster": [], "position": 0, "routed": 0, "updated_at": now}


async def write_rows(session: AsyncSession, txn: RoutingTxn) -> None:
    """Insert the rows kept so far, every table in one statement on PostgreSQL (at the end of a
    round; before reading assignments back in this transaction). At commit, ``insert`` of the
    round's assignments and history was rendered as one multi-row VALUES per table, a new
    statement text (and server-side parse) for each round size."""
    rows, txn.rows = txn.rows, {}
    await insert_many(session, *rows.items())


def _flush(session: Session, txn: RoutingTxn) -> None:
    """One statement per table: the rows, the reps' counters, the pools, the standings."""
    rows, txn.rows = txn.rows, {}
    for table, values in rows.items():
        session.execute(insert(table), values)
    if txn.opened:
        counters = [
            {"b_id": rep, "b_delta": delta}
            | dict(zip(("b_day", "b_today"), txn.days.get(rep, (None, None)), strict=True))
            for rep, delta in sorted(txn.opened.items())  # rows in id order: see release_leads
        ]
        session.execute(_COUNTERS, counters)
    changed = {
        team_id: (txn.stored[team_id], after)
        for team_id, after in txn.ledgers.items()
        if after is not txn.stored[team_id]
    }
    if changed:
        _write_ledgers(session, changed, txn.now)


_COUNTERS = (
    update(reps_t)
    .where(reps_t.c.id == bindparam("b_id"))
    .values(
        open_leads=reps_t.c.open_leads + bindparam("b_delta"),
        assigned_day=func.coalesce(bindparam("b_day", type_=String), reps_t.c.assigned_day),
        assigned_today=func.coalesce(bindparam("b_today", type_=Integer), reps_t.c.assigned_today),
    )
)
"""Open-lead counts as deltas; the day's count only for reps given a lead (released: kept)."""


def _write_ledgers(
    session: Session,
    changed: dict[UUID, tuple[fair.PoolLedger, fair.PoolLedger]],
    now: Any,
) -> None:
    pools = [
        {
            "team_id": team_id,
            "roster": [[str(rep), weight] for rep, weight in after.roster],
            "position": after.position,
            "routed": after.routed,
            "updated_at": now,
        }
        for team_id, (_, after) in changed.items()
    ]
    stmt = upsert(session, pools_t)
    columns: tuple[str, ...] = ("roster", "position", "routed", "updated_at")
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["team_id"], set_={c: stmt.excluded[c] for c in columns}
        ),
        pools,
    )
    standings = [
        {"team_id": team_id, "rep_id": rep, "credited": s.credited, "assigned": s.assigned}
        | {"window_count": s.window_count}
        for team_id, (before, after) in changed.items()
        for rep, s in after.standings.items()
        if before.standings.get(rep) != s
    ]
    if standings:
        stmt = upsert(session, ledger_t)
        columns = ("credited", "assigned", "window_count")
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["team_id", "rep_id"], set_={c: stmt.excluded[c] for c in columns}
            ),
            standings,
        )


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    txn = session.info.pop(KEY, None)
    if txn is not None:
        _flush(session, txn)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(KEY, None)
