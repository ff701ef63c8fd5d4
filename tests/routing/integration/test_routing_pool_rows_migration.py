"""Migration 0017 gives every team the ``routing_pools`` row its routers lock: on a database with
a routing history (SQLite and PostgreSQL), a pool that had a row keeps its fairness window, teams
that had none get an empty one, and routing carries on from the stored ledger."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from alembic import command
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.assign import route_leads
from services.routing.models import PoolState
from services.routing.store import forget_cached_directories
from services.settings import load_settings
from shared.db import make_sessions
from shared.migrate import alembic_config, upgrade
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_leads, rep, team

BEFORE = "0016_retention_indexes"
ANN, BOB, CY = UUID(int=1), UUID(int=2), UUID(int=3)
ROUTED, EMPTY, QUEUE = UUID(int=10), UUID(int=11), UUID(int=12)
NAMES = {ANN: "ann", BOB: "bob", CY: "cy"}
ROSTER = [[str(ANN), 1], [str(BOB), 1], [str(CY), 1]]
TEAMS = {ROUTED: "default", EMPTY: "north", QUEUE: "triage"}
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _insert(connection: Connection, name: str, *rows: dict[str, Any]) -> None:
    """Rows into a table as it was at ``BEFORE`` (the models may have moved on since)."""
    columns = [sa.column(key, _type(value)) for key, value in rows[0].items()]
    connection.execute(sa.table(name, *columns).insert(), list(rows))


def _type(value: Any) -> Any:
    if isinstance(value, UUID):
        return sa.Uuid()
    if isinstance(value, datetime):
        return sa.DateTime(timezone=True)
    return JSON if isinstance(value, list | dict) else None


def _old_rows(connection: Connection) -> None:
    """Three teams as the code before 0017 left them: ``default`` has routed two leads (its
    pool row and ledger), ``north`` and ``triage`` never routed one (no pool row)."""
    stamps = {"created_at": NOW, "updated_at": NOW}
    team = {"kind": "team", "strategy": "round_robin", "outside_hours": "skip"} | stamps
    _insert(connection, "routing_teams", *({"id": i, "name": n} | team for i, n in TEAMS.items()))
    lists = dict.fromkeys(("roles", "territories", "segments", "languages", "products"), [])
    rep = {"weight": 1, "time_zone": "UTC", "status": "active", "working_hours": {}} | lists
    rep |= {"open_leads": 0, "assigned_today": 0} | stamps
    _insert(
        connection,
        "routing_reps",
        *({"id": i, "email": f"{n}@co.com", "name": n} | rep for i, n in NAMES.items()),
    )
    _insert(
        connection,
        "routing_memberships",
        *({"team_id": ROUTED, "rep_id": rep_id} for rep_id in NAMES),
        {"team_id": EMPTY, "rep_id": CY},
    )
    _insert(connection, "routing_state", {"id": 1, "directory_token": "before"})
    # Two leads routed in default's window of three: ann's, then bob's.
    pool = {"team_id": ROUTED, "roster": ROSTER, "position": 2, "routed": 2, "updated_at": NOW}
    _insert(connection, "routing_pools", pool)
    standing = {"team_id": ROUTED, "credited": 0.0, "assigned": 1, "window_count": 1}
    _insert(connection, "routing_ledger", standing | {"rep_id": ANN}, standing | {"rep_id": BOB})


async def _pools(engine: AsyncEngine) -> dict[UUID, tuple[Any, ...]]:
    query = sa.text("SELECT team_id, roster, position, routed FROM routing_pools")
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {
        UUID(str(team)): (_json(roster), position, routed)
        for team, roster, position, routed in rows
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def test_every_team_gets_its_pool_row_and_routing_carries_on_from_the_ledger(
    unmigrated: tuple[str, AsyncEngine],
) -> None:
    url, engine = unmigrated
    await upgrade(engine, BEFORE)
    async with engine.begin() as connection:
        await connection.run_sync(_old_rows)
    await upgrade(engine)
    pools = await _pools(engine)
    assert pools == {ROUTED: (ROSTER, 2, 2), EMPTY: ([], 0, 0), QUEUE: ([], 0, 0)}

    # The services on the upgraded database: the window goes on where it was (cy is due).
    forget_cached_directories()
    settings = load_settings(db={"url": url})
    sessions = make_sessions(engine)
    async with sessions.begin() as session:
        leads = await add_leads(session, 4)
    async with sessions.begin() as session:
        decisions = await route_leads(session, leads, now=NOW, settings=settings)
    assert [d.owner_id for d in decisions] == [CY, ANN, BOB, CY]
    assert (await _pools(engine))[ROUTED] == (ROSTER, 6, 6)  # the same window, carried on

    # Nothing to undo; upgrading again leaves every row as it is.
    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, BEFORE)

    before = await _pools(engine)
    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
    await upgrade(engine)
    assert await _pools(engine) == before


async def test_a_team_without_its_pool_row_gets_one_when_first_routed(db: Database) -> None:
    """A team made by hand, not through ``put_team``: its router makes the row it locks."""
    settings = make_settings(db)
    async with db.sessions.begin() as session:
        team_id = await team(session, "default")
        await rep(session, "ann@co.com", "default")
        await session.execute(sa.delete(PoolState).where(PoolState.team_id == team_id))
        [lead] = await add_leads(session, 1)
    async with db.sessions.begin() as session:
        [decision] = await route_leads(session, [lead], now=NOW, settings=settings)
    assert decision.outcome == "routed"
    async with db.sessions() as session:
        assert await session.scalar(sa.select(PoolState.routed)) == 1
