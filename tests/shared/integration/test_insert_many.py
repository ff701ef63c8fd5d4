"""``shared.db.insert_many``: several tables in one go, all or nothing, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared.db import insert_many
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory
from tests.support.common import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _lead(email: str) -> dict[str, object]:
    return {
        "id": new_id(),
        "email": email,
        "source": "web",
        "stage": "inquiry",
        "created_at": NOW,
        "updated_at": NOW,
    }


async def test_rows_of_several_tables_are_stored_with_their_types(db: Database) -> None:
    leads = [_lead(f"many-{n}@example.com") for n in range(3)]
    inquiries = [
        {
            "id": new_id(),
            "lead_id": lead["id"],
            "source": "web",
            "received_at": NOW,
            "submission": {"email": lead["email"], "custom": {"size": 11, "tags": ["a", "b"]}},
            "raw": None if n == 0 else {"email": lead["email"]},
        }
        for n, lead in enumerate(leads)
    ]
    history = [
        {
            "id": new_id(),
            "lead_id": leads[0]["id"],
            "occurred_at": NOW,
            "kind": "lead.received",
            "event_id": None,
            "detail": {"source": "web"},
        }
    ]
    async with db.sessions.begin() as session:
        await insert_many(
            session,
            (Lead.__table__, leads),
            (Inquiry.__table__, inquiries),
            (LeadHistory.__table__, history),
            (LeadHistory.__table__, []),  # an empty batch is skipped
        )
    async with db.sessions() as session:
        stored = {i.id: i for i in await session.scalars(select(Inquiry))}
        entries = list(await session.scalars(select(LeadHistory)))
        emails = set(await session.scalars(select(Lead.email)))
    assert emails == {lead["email"] for lead in leads}
    assert {i: (s.lead_id, s.submission, s.raw) for i, s in stored.items()} == {
        row["id"]: (row["lead_id"], row["submission"], row["raw"]) for row in inquiries
    }
    assert stored[inquiries[0]["id"]].received_at == NOW
    assert [(e.lead_id, e.detail, e.event_id) for e in entries] == [
        (leads[0]["id"], {"source": "web"}, None)
    ]


async def test_a_conflict_in_one_table_stores_nothing(db: Database) -> None:
    taken = _lead("taken@example.com")
    async with db.sessions.begin() as session:
        await insert_many(session, (Lead.__table__, [taken]))
    fresh = _lead("fresh@example.com")
    again = _lead("taken@example.com")
    with pytest.raises(IntegrityError):
        async with db.sessions.begin() as session:
            await insert_many(session, (Lead.__table__, [fresh]), (Lead.__table__, [again]))
    async with db.sessions() as session:
        assert set(await session.scalars(select(Lead.email))) == {"taken@example.com"}
