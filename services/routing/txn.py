"""Routing's state for one database transaction: the lock, then loads and ledgers read once and
written once, when the transaction commits (so are the assignment and history rows).

Why one lock for all of routing: a routing round routes many leads in ONE transaction, to pools
in lead order. Per-pool or per-rep row locks would be taken in different orders by two consumers
and deadlock; one row (``routing_state`` id 1, ``SELECT … FOR UPDATE``) taken first makes the
order fixed. Held to commit, it is what guarantees that two consumers never both see a rep under
capacity and both give it a lead (the lead's own row lock guards against assigning it twice).
On SQLite, ``BEGIN IMMEDIATE`` already serializes writers.

Because nobody else can raise loads or change ledgers while the lock is held, they are read once
per transaction and kept here; ``before_commit`` writes what changed (open-lead counts as deltas,
reps in id order, so a concurrent release, which does not take the lock, is never lost and never
deadlocks with it: see ``service.release_leads``). A rollback drops it all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Integer, String, bindparam, event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from services.routing import ledger as fair
from services.routing.directory import RepLoad, TeamInfo
from services.routing.models import LedgerEntry, PoolState, Rep, RoutingState
from shared.db import insert_ignoring_conflicts, insert_many, upsert
from shared.ids import new_id
from shared.models import table_of

KEY = "leadflow.routing"
reps_t, state_t = table_of(Rep), table_of(RoutingState)
pools_t, ledger_t = table_of(PoolState), table_of(LedgerEntry)


@dataclass
class RoutingTxn:
    token: str
    loads: dict[UUID, RepLoad] = field(default_factory=dict)
    opened: dict[UUID, int] = field(default_factory=dict)
    """Open-lead count changes per rep, written as deltas."""
    days: dict[UUID, tuple[str, int]] = field(default_factory=dict)
    ledgers: dict[UUID, fair.PoolLedger] = field(default_factory=dict)
    stored: dict[UUID, fair.PoolLedger] = field(default_factory=dict)
    now: datetime | None = None
    rows: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    """Assignment and history rows, inserted together (one statement per table)."""

    def add(self, table: Any, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def assign(self, rep: UUID, day: str) -> None:
        load = self.loads.get(rep, RepLoad())
        today = load.today + 1 if load.day == day else 1
        self.loads[rep] = RepLoad(load.open_leads + 1, day, today)
        self.opened[rep] = self.opened.get(rep, 0) + 1
        self.days[rep] = (day, today)

    def release(self, rep: UUID) -> None:
        load = self.loads.get(rep)
        if load is not None:
            self.loads[rep] = RepLoad(max(load.open_leads - 1, 0), load.day, load.today)
        self.opened[rep] = self.opened.get(rep, 0) - 1


async def begin(session: AsyncSession) -> RoutingTxn:
    """Take the routing lock (once per transaction) and return this transaction's state."""
    txn = session.info.get(KEY)
    if txn is not None:
        return txn
    query = select(state_t.c.directory_token).where(state_t.c.id == 1).with_for_update()
    token = await session.scalar(query)
    if token is None:
        await session.execute(
            insert_ignoring_conflicts(session, state_t).values(id=1, directory_token=str(new_id()))
        )
        token = await session.scalar(query)
    txn = session.info[KEY] = RoutingTxn(str(token))
    return txn


async def loads_and_ledger(
    session: AsyncSession, txn: RoutingTxn, team: TeamInfo | None
) -> tuple[dict[UUID, RepLoad], fair.PoolLedger | None]:
    if team is None:
        return txn.loads, None
    if team.id not in txn.ledgers:  # read already in this transaction (a round: all at once)
        await load(session, txn, [team])
    return txn.loads, txn.ledgers[team.id]


async def load(session: AsyncSession, txn: RoutingTxn, teams: Iterable[TeamInfo]) -> None:
    """Read, for the teams not read yet in this transaction, their members' loads and their
    ledgers: three statements however many teams (a round trip is what a routing round waits
    on, and the scoring process's other work runs in between)."""
    teams = list({t.id: t for t in teams if t.id not in txn.ledgers}.values())
    missing = sorted({rep for team in teams for rep in team.members} - set(txn.loads))
    if missing:
        query = select(
            reps_t.c.id, reps_t.c.open_leads, reps_t.c.assigned_day, reps_t.c.assigned_today
        ).where(reps_t.c.id.in_(missing))
        for row in await session.execute(query):
            txn.loads[row.id] = RepLoad(row.open_leads, row.assigned_day, row.assigned_today)
    if teams:
        ledgers = await read_ledgers(session, [team.id for team in teams])
        for team in teams:
            txn.ledgers[team.id] = txn.stored[team.id] = ledgers[team.id]


async def read_ledgers(session: AsyncSession, team_ids: list[UUID]) -> dict[UUID, fair.PoolLedger]:
    pools = {
        row.team_id: row
        for row in await session.execute(select(pools_t).where(pools_t.c.team_id.in_(team_ids)))
    }
    standings: dict[UUID, dict[UUID, fair.Standing]] = {team: {} for team in team_ids}
    query = select(ledger_t).where(ledger_t.c.team_id.in_(team_ids))
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
