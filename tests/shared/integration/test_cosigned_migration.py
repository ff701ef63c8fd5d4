"""Migration 0009 brings the qualification rulesets and the routing rules into one pair of tables:
a database holding versions of both kinds (retired, active, proposed, with their approvals) has
the same versions afterwards, on SQLite and PostgreSQL, and the services read the same live
versions; the downgrade gives the old tables back with every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.store import forget_cached_directories, load_directory
from services.routing.versions import ROUTING
from services.scoring.store import RulesetCache
from services.scoring.versions import QUALIFICATION
from shared.cosign import checks, store
from shared.db import make_sessions
from shared.migrate import alembic_config, upgrade

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RULESET = (Path(__file__).parents[3] / "rules" / "default.yaml").read_text()
ROUTING_RULES = "name: routing\nrules: []\ndefault_queue: Inbound\n"
STATUSES = ("retired", "active", "proposed")


def _rulesets() -> sa.TableClause:
    return sa.table(
        "rulesets",
        *(sa.column(c) for c in ("version", "label", "name", "content", "content_hash")),
        *(sa.column(c) for c in ("status", "note", "proposed_by", "activated_by")),
        sa.column("id", sa.Uuid()),
        *(sa.column(c, sa.DateTime(timezone=True)) for c in ("proposed_at", "activated_at")),
        sa.column("retired_at", sa.DateTime(timezone=True)),
    )


def _approvals(name: str, key: str, key_type: Any) -> sa.TableClause:
    return sa.table(
        name,
        sa.column("id", sa.Uuid()),
        sa.column(key, key_type),
        *(sa.column(c) for c in ("side", "approver", "content_hash")),
        sa.column("approved_at", sa.DateTime(timezone=True)),
    )


def _routing_rulesets() -> sa.TableClause:
    return sa.table(
        "routing_rulesets",
        *(sa.column(c) for c in ("version", "content_hash", "text", "note", "created_by")),
        sa.column("active", sa.Boolean()),
        sa.column("activated_by"),
        *(sa.column(c, sa.DateTime(timezone=True)) for c in ("created_at", "activated_at")),
        sa.column("retired_at", sa.DateTime(timezone=True)),
    )


def _old_rows(connection: Connection) -> dict[str, Any]:
    """Three versions of each kind in the old tables: retired, active, proposed (signed once)."""
    ids = [uuid4() for _ in STATUSES]
    for number, (status, row_id) in enumerate(zip(STATUSES, ids, strict=True), 1):
        text = RULESET.replace("name:", f"# version {number}\nname:", 1)
        digest = checks.content_hash(text)
        at = T0 + timedelta(days=number)
        connection.execute(
            _rulesets()
            .insert()
            .values(
                id=row_id,
                version=number,
                label=f"v{number}-{digest[:8]}",
                name="Sample",
                content=text,
                content_hash=digest,
                status=status,
                note=f"note {number}",
                proposed_by="pat",
                proposed_at=at,
                activated_by=None if status == "proposed" else "maria",
                activated_at=None if status == "proposed" else at,
                retired_at=at + timedelta(hours=1) if status == "retired" else None,
            )
        )
        routing_text = ROUTING_RULES + f"# version {number}\n"
        connection.execute(
            _routing_rulesets()
            .insert()
            .values(
                version=number,
                content_hash=checks.content_hash(routing_text),
                text=routing_text,
                active=status == "active",
                note="",
                created_by="rob",
                created_at=at,
                activated_by=None if status == "proposed" else "sam",
                activated_at=None if status == "proposed" else at,
                retired_at=at + timedelta(hours=1) if status == "retired" else None,
            )
        )
        sides = ("marketing",) if status == "proposed" else ("marketing", "sales")
        for side in sides:
            signed = {"side": side, "approver": f"{side}-lead", "approved_at": at}
            connection.execute(
                _approvals("ruleset_approvals", "ruleset_id", sa.Uuid())
                .insert()
                .values(id=uuid4(), ruleset_id=row_id, content_hash=digest, **signed)
            )
            connection.execute(
                _approvals("routing_ruleset_approvals", "ruleset_version", sa.Integer())
                .insert()
                .values(
                    id=uuid4(),
                    ruleset_version=number,
                    content_hash=checks.content_hash(routing_text),
                    **signed,
                )
            )
    return {"ids": ids}


async def _migrate(engine: AsyncEngine, how: str, revision: str) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, how)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)


async def test_both_kinds_of_versions_survive_the_move_to_one_table(
    unmigrated: tuple[str, AsyncEngine],
) -> None:
    url, engine = unmigrated
    await upgrade(engine, "0003_rules")
    await upgrade(engine, "0007_routing_cosign")
    async with engine.begin() as connection:
        old = await connection.run_sync(_old_rows)
    await upgrade(engine)  # every head, 0009 among them
    sessions = make_sessions(engine)
    async with sessions() as session:
        qualification = await store.history(session, QUALIFICATION)
        routing = await store.history(session, ROUTING)
        live_label, _ = await RulesetCache().active(session)
        forget_cached_directories()
        directory = await load_directory(session, "token")
        kept_ids = [(await store.find(session, QUALIFICATION, number)).id for number in (1, 2, 3)]
    assert [v["version"] for v in qualification] == [3, 2, 1]
    assert [v["status"] for v in qualification] == ["proposed", "active", "retired"]
    assert [v["version"] for v in routing] == [3, 2, 1]
    assert [v["status"] for v in routing] == ["proposed", "active", "retired"]
    assert [v["active"] for v in routing] == [False, True, False]
    assert live_label == qualification[1]["label"] and live_label.startswith("v2-")
    assert directory.ruleset_version == 2
    assert kept_ids == old["ids"]  # rows that name a ruleset by id or label still find it
    for views in (qualification, routing):
        assert [len(v["approvals"]) for v in views] == [1, 2, 2]
        assert views[0]["approvals"][0]["approver"] == "marketing-lead"
        assert views[1]["activated_at"] == T0 + timedelta(days=2)
        assert views[2]["retired_at"] == T0 + timedelta(days=1, hours=1)
    assert qualification[0]["note"] == "note 3" and routing[0]["proposed_by"] == "rob"

    await _migrate(engine, "downgrade", "0003_rules")  # undoes 0009 (its child), alone
    async with engine.connect() as connection:
        rulesets = (await connection.execute(sa.text("SELECT version, status FROM rulesets"))).all()
        routing_rows = (
            await connection.execute(sa.text("SELECT version, active FROM routing_rulesets"))
        ).all()
        approvals = await connection.scalar(sa.text("SELECT count(*) FROM ruleset_approvals"))
    assert sorted(rulesets) == [(1, "retired"), (2, "active"), (3, "proposed")]
    assert sorted((v, bool(a)) for v, a in routing_rows) == [(1, False), (2, True), (3, False)]
    assert approvals == 5
    await upgrade(engine)
    async with sessions() as session:
        assert await store.history(session, QUALIFICATION) == qualification
        assert await store.history(session, ROUTING) == routing
    assert isinstance(kept_ids[0], UUID) and url
