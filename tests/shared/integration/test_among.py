"""``shared.db.among``: ``column IN values`` on both databases, and on PostgreSQL one statement
text whatever the number of values (an expanding IN is a new text, prepared anew, per count)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from shared.db import among
from shared.ids import new_id
from shared.models import Lead
from tests.support.common import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


async def _leads(database: Database, count: int) -> list[Any]:
    leads = [
        Lead(id=new_id(), email=f"p{i}@example.com", source="web", created_at=NOW, updated_at=NOW)
        for i in range(count)
    ]
    async with database.sessions.begin() as session:
        session.add_all(leads)
    return leads


async def test_it_selects_exactly_the_rows_named(db: Database) -> None:
    leads = await _leads(db, 5)
    unknown = new_id()
    async with db.sessions() as session:
        for chosen in ([], leads[:1], leads[1:4], leads):
            ids = [lead.id for lead in chosen]
            found = await session.scalars(select(Lead.id).where(among(session, Lead.id, ids)))
            assert sorted(found) == sorted(ids)
        with_unknown = [leads[0].id, unknown]
        found = await session.scalars(select(Lead.id).where(among(session, Lead.id, with_unknown)))
        assert list(found) == [leads[0].id]
        emails = ["p2@example.com", "nobody@example.com"]
        found = await session.scalars(select(Lead.id).where(among(session, Lead.email, emails)))
        assert list(found) == [leads[2].id]


@contextmanager
def _statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_one_statement_text_for_any_count_on_postgresql(pg: Database) -> None:
    leads = await _leads(pg, 12)
    texts: dict[str, set[str]] = {}
    for name in ("among", "in"):
        async with pg.sessions() as session:
            with _statements(pg) as seen:
                for count in (1, 2, 7, 12):
                    ids = [lead.id for lead in leads[:count]]
                    where = among(session, Lead.id, ids) if name == "among" else Lead.id.in_(ids)
                    assert len(list(await session.scalars(select(Lead.id).where(where)))) == count
        texts[name] = set(seen)
    assert len(texts["among"]) == 1
    assert len(texts["in"]) == 4  # the control: what among saves, a text (a prepare) per count
