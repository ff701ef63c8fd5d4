"""Writing inquiries: many at once, in the caller's transaction, with a handful of statements.

Every inquiry becomes: its lead (found by email, else created), an inquiry row, a history entry
and a ``lead.received`` outbox row. Inquiries for one email in the same batch attach to one lead,
as they would one after the other. Lead upserts run in email order so two concurrent batches lock
rows in the same order and cannot deadlock; the upsert's row lock also sequences a lead's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import func, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.schemas import LeadAccepted, LeadSubmission
from shared.config import Settings
from shared.events import LeadReceived, LeadReceivedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory
from shared.outbox import outbox, outbox_row

leads = Lead.__table__
inquiries = Inquiry.__table__
history = LeadHistory.__table__
SOURCE = "/leadflow/intake"
LEAD_FIELDS = ("phone", "first_name", "last_name", "company")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One inquiry as it arrived, with the time it was accepted."""

    submission: LeadSubmission
    received_at: datetime
    inquiry_id: UUID = field(default_factory=new_id)
    is_test: bool = False
    """An ad platform's test lead: flagged on the lead (unless it is real) and on the event."""


async def store_inquiries(
    session: AsyncSession, arrivals: Sequence[Arrival], *, settings: Settings
) -> list[LeadAccepted]:
    """Store the arrivals; the caller owns (and commits) the transaction."""
    lead_of = await _leads_for(session, arrivals)
    accepted, inquiry_rows, history_rows, events = [], [], [], []
    for arrival in arrivals:
        lead_id, new = lead_of[id(arrival)]
        submission = arrival.submission
        event = LeadReceived.about_lead(
            lead_id,
            LeadReceivedData(
                lead_id=lead_id,
                inquiry_id=arrival.inquiry_id,
                source=submission.source,
                new_lead=new,
                is_test=arrival.is_test,
            ),
            source=SOURCE,
            time=arrival.received_at,
        )
        inquiry_rows.append(
            {
                "id": arrival.inquiry_id,
                "lead_id": lead_id,
                "source": submission.source,
                "received_at": arrival.received_at,
                "submission": submission.model_dump(mode="json", exclude_none=True),
            }
        )
        history_rows.append(
            {
                "id": new_id(),
                "lead_id": lead_id,
                "occurred_at": arrival.received_at,
                "kind": event.type,
                "event_id": event.id,
                "detail": {"inquiry_id": str(arrival.inquiry_id), "source": submission.source},
            }
        )
        events.append(outbox_row(event, settings))
        accepted.append(LeadAccepted(lead_id=lead_id, inquiry_id=arrival.inquiry_id, new_lead=new))
    await session.execute(insert(inquiries), inquiry_rows)
    await session.execute(insert(history), history_rows)
    await session.execute(insert(outbox), events)
    return accepted


async def _leads_for(
    session: AsyncSession, arrivals: Sequence[Arrival]
) -> dict[int, tuple[UUID, bool]]:
    """The lead of each arrival (keyed by ``id(arrival)``) and whether this batch created it."""
    found: dict[int, tuple[UUID, bool]] = {}
    by_email: dict[str, list[Arrival]] = {}
    anonymous = []
    for arrival in arrivals:
        if arrival.submission.email:
            by_email.setdefault(arrival.submission.email, []).append(arrival)
        else:
            anonymous.append(arrival)
    if by_email:
        candidates = {email: _lead_row(group) for email, group in sorted(by_email.items())}
        ids = await _upsert_by_email(session, list(candidates.values()))
        for email, group in by_email.items():
            lead_id = ids[email]
            created = lead_id == candidates[email]["id"]
            for position, arrival in enumerate(group):
                found[id(arrival)] = (lead_id, created and position == 0)
    if anonymous:
        rows = [_lead_row([arrival]) for arrival in anonymous]
        await session.execute(insert(leads), rows)
        for arrival, row in zip(anonymous, rows, strict=True):
            found[id(arrival)] = (row["id"], True)
    return found


def _lead_row(group: Sequence[Arrival]) -> dict[str, Any]:
    """A new lead from one or more inquiries by the same person: later non-empty facts win."""
    first = group[0]
    row: dict[str, Any] = {
        "id": new_id(),
        "email": first.submission.email,
        "source": first.submission.source,
        "stage": "inquiry",
        "created_at": first.received_at,
        "updated_at": group[-1].received_at,
        "is_test": all(a.is_test for a in group),
    }
    for name in LEAD_FIELDS:
        values = [getattr(a.submission, name) for a in group if getattr(a.submission, name)]
        row[name] = values[-1] if values else None
    return row


async def _upsert_by_email(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, UUID]:
    # One cached statement, executed for many rows (rendered as multi-row VALUES by SQLAlchemy's
    # "insertmanyvalues"): a statement built with .values(rows) would compile anew per batch size.
    result = await session.execute(_upsert_statement(session.get_bind().dialect.name), rows)
    return {email: lead_id for lead_id, email in result}


@cache
def _upsert_statement(dialect: str) -> Any:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(leads)
    fresh = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[leads.c.email],
        set_={name: func.coalesce(fresh[name], leads.c[name]) for name in LEAD_FIELDS}
        | {"updated_at": fresh.updated_at},
    ).returning(leads.c.id, leads.c.email)
