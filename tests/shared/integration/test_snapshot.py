"""A view read in several queries sees one moment on PostgreSQL, whose default gives each
statement its own (the lead view once showed a scoring batch's history beside the stage from
before it)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select, update

from services.intake.forms.store import find_lead
from shared.db import snapshot
from shared.models import Lead, LeadHistory
from tests.support.common import Database


async def _scoring_commits(database: Database, lead_id: object) -> None:
    """What a scoring batch commits: the lead's new stage and its history entry, together."""
    now = datetime.now(UTC)
    async with database.sessions.begin() as session:
        await session.execute(update(Lead).where(Lead.id == lead_id).values(stage="mql"))
        entry = LeadHistory(
            id=uuid4(), lead_id=lead_id, occurred_at=now, kind="lead.mql", detail={}
        )
        session.add(entry)


@pytest.mark.parametrize("reader", ["snapshot", "sessions"])
async def test_a_commit_between_two_reads_is_seen_by_both_or_neither(
    pg: Database, reader: str
) -> None:
    lead_id, now = uuid4(), datetime.now(UTC)
    async with pg.sessions.begin() as session:
        session.add(Lead(id=lead_id, source="web", created_at=now, updated_at=now))
    opened = snapshot(pg.sessions) if reader == "snapshot" else pg.sessions()
    async with opened as session:
        stage = await session.scalar(select(Lead.stage).where(Lead.id == lead_id))
        await _scoring_commits(pg, lead_id)
        entries = await session.scalar(
            select(func.count()).where(
                LeadHistory.lead_id == lead_id, LeadHistory.kind == "lead.mql"
            )
        )
    assert stage == "inquiry"
    # The control shows the skew the snapshot prevents: the history from after the stage.
    assert entries == (0 if reader == "snapshot" else 1)


async def test_the_lead_view_is_one_moment(pg: Database) -> None:
    lead_id, now = uuid4(), datetime.now(UTC)
    async with pg.sessions.begin() as session:
        session.add(Lead(id=lead_id, source="web", created_at=now, updated_at=now))
    async with snapshot(pg.sessions) as session:
        await session.scalar(select(Lead.stage).where(Lead.id == lead_id))
        await _scoring_commits(pg, lead_id)
        view = await find_lead(session, lead_id)
    assert view is not None
    assert (view.stage, [h.kind for h in view.history]) == ("inquiry", [])
    async with snapshot(pg.sessions) as session:
        view = await find_lead(session, lead_id)
    assert view is not None
    assert (view.stage, [h.kind for h in view.history]) == ("mql", ["lead.mql"])


async def test_a_snapshot_is_read_only(pg: Database) -> None:
    now = datetime.now(UTC)
    with pytest.raises(Exception, match="read-only transaction"):
        async with snapshot(pg.sessions) as session:
            session.add(Lead(id=uuid4(), source="web", created_at=now, updated_at=now))
            await session.flush()
