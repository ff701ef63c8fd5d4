"""Writing inquiries: many at once, in the caller's transaction, with a handful of statements.

Every inquiry becomes: its lead (found by email, else by phone, else created), an inquiry row, a
history entry and a ``lead.received`` outbox row. Inquiries for one person in the same batch
attach to one lead, as they would one after the other. Lead upserts run in key order (emails,
then phones, then ids) so two concurrent batches lock rows in the same order; the upsert's row
lock also sequences a lead's events.

- Idempotency-Keys are claimed first, before any lead is touched: a key another transaction holds
  makes this one wait for it (PostgreSQL) and then answer with what it answered; a repeat within
  the batch gets the first one's answer. So a retried POST never makes a second inquiry.
- Quarantined arrivals (a honeypot hit) get a lead of their own, flagged, with no contact columns
  (the submission keeps them): they never merge with a real person's lead and emit no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import UUID

from opentelemetry.context import Context
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.idempotency import claim_statement
from services.intake.models import IdempotencyRecord
from services.intake.schemas import LeadAccepted, LeadSubmission
from services.intake.settings import IntakeConfig
from shared.db import among, insert_many, unnest_arrays
from shared.events import LeadReceived, LeadReceivedData
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory, table_of
from shared.outbox import outbox, outbox_row, staged_in, traced
from shared.problems import Problem

leads = table_of(Lead)
inquiries = table_of(Inquiry)
history = table_of(LeadHistory)
records = table_of(IdempotencyRecord)
SOURCE = "/leadflow/intake"
LEAD_FIELDS = ("phone", "first_name", "last_name", "company", "country", "company_domain")
QUARANTINED = "lead.quarantined"
Answer = LeadAccepted | Exception


class Replayed(LeadAccepted):
    """The first answer to an Idempotency-Key, given again."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    key: str
    """Scoped by who sent it: ``<api key id>:<Idempotency-Key header>``."""
    fingerprint: str
    """SHA-256 of the normalised submission."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """One inquiry as it arrived, with the time it was accepted."""

    submission: LeadSubmission
    received_at: datetime
    inquiry_id: UUID = field(default_factory=new_id)
    is_test: bool = False
    """An ad platform's test lead: flagged on the lead (unless it is real) and on the event."""
    raw: dict[str, Any] | None = None
    """The body as posted, kept beside the normalised submission."""
    idempotency: Idempotency | None = None
    quarantine: str | None = None
    """Why it is held back from routing (``honeypot``), if it is."""
    trace: Context | None = None
    """The request's trace context, tracing on (the writer stores it in a task of its own)."""


async def store_inquiries(
    session: AsyncSession, arrivals: Sequence[Arrival], *, settings: IntakeConfig
) -> list[Answer]:
    """Store the arrivals; the caller owns (and commits) the transaction. Each answer is the
    accepted inquiry, or the problem of that one arrival (an Idempotency-Key misused)."""
    answers: dict[int, Answer] = {}
    followers = await _claim_keys(session, arrivals, answers, settings=settings)
    fresh = [a for a in arrivals if id(a) not in answers and id(a) not in followers]
    lead_of = await _leads_for(session, fresh)
    inquiry_rows, history_rows, events = [], [], []
    for arrival in fresh:
        lead_id, new = lead_of[id(arrival)]
        submission = arrival.submission
        inquiry_rows.append(
            {
                "id": arrival.inquiry_id,
                "lead_id": lead_id,
                "source": submission.source,
                "received_at": arrival.received_at,
                "submission": submission.model_dump(mode="json", exclude_none=True),
                "raw": arrival.raw,
                "quarantine_reason": arrival.quarantine,
            }
        )
        detail: dict[str, Any] = {
            "inquiry_id": str(arrival.inquiry_id),
            "source": submission.source,
        }
        entry = {"id": new_id(), "lead_id": lead_id, "occurred_at": arrival.received_at}
        if arrival.quarantine:
            held = detail | {"reason": arrival.quarantine}
            history_rows.append(entry | {"kind": QUARANTINED, "event_id": None, "detail": held})
        else:
            event = traced(_received(arrival, lead_id, new), settings, arrival.trace)
            history_rows.append(
                entry | {"kind": event.type, "event_id": event.id, "detail": detail}
            )
            events.append(event)
        answers[id(arrival)] = LeadAccepted(
            lead_id=lead_id, inquiry_id=arrival.inquiry_id, new_lead=new
        )
    # One statement for the three tables (on PostgreSQL), the outbox rows staged with the rest.
    await insert_many(
        session,
        (inquiries, inquiry_rows),
        (history, history_rows),
        (outbox, [outbox_row(event, settings) for event in events]),
    )
    if events:
        staged_in(session)
    await _record_answers(session, fresh, answers)
    for follower, leader in followers.items():
        answers[follower] = _replay(answers[leader])
    return [answers[id(arrival)] for arrival in arrivals]


def _received(arrival: Arrival, lead_id: UUID, new: bool) -> LeadReceived:
    return LeadReceived.about_lead(
        lead_id,
        LeadReceivedData(
            lead_id=lead_id,
            inquiry_id=arrival.inquiry_id,
            source=arrival.submission.source,
            new_lead=new,
            is_test=arrival.is_test,
        ),
        source=SOURCE,
        time=arrival.received_at,
    )


async def _claim_keys(
    session: AsyncSession,
    arrivals: Sequence[Arrival],
    answers: dict[int, Answer],
    *,
    settings: IntakeConfig,
) -> dict[int, int]:
    """Claim each Idempotency-Key; answer the arrivals whose key was already used. Returns the
    repeats within this batch: arrival → the first arrival with its key."""
    leaders: dict[str, Arrival] = {}
    followers: dict[int, int] = {}
    for arrival in arrivals:
        claim = arrival.idempotency
        if claim is None:
            continue
        first = leaders.setdefault(claim.key, arrival)
        if first is not arrival:
            if first.idempotency and first.idempotency.fingerprint == claim.fingerprint:
                followers[id(arrival)] = id(first)
            else:
                answers[id(arrival)] = _mismatch()
    if not leaders:
        return followers
    cutoff = arrivals[0].received_at - timedelta(hours=settings.intake.idempotency_hours)
    rows: list[dict[str, Any]] = [
        {
            "key": key,
            "fingerprint": leaders[key].idempotency.fingerprint,  # type: ignore[union-attr]
            "status": 0,
            "body": {},
            "created_at": leaders[key].received_at,
            "cutoff": cutoff,
        }
        for key in sorted(leaders)
    ]
    result = await session.execute(claim_statement(session.get_bind().dialect.name), rows)
    claimed = set(result.scalars())
    taken = [key for key in leaders if key not in claimed]
    if taken:
        stored = await session.execute(
            select(records.c.key, records.c.fingerprint, records.c.status, records.c.body).where(
                among(session, records.c.key, taken)
            )
        )
        for key, fingerprint, status, body in stored:
            arrival = leaders[key]
            if fingerprint != arrival.idempotency.fingerprint:  # type: ignore[union-attr]
                answers[id(arrival)] = _mismatch()
            elif status != 202:
                answers[id(arrival)] = Problem(
                    409,
                    "Conflict",
                    "a request with this key is in progress",
                    field="Idempotency-Key",
                )
            else:
                answers[id(arrival)] = Replayed.model_validate(body)
    pending = {}
    for follower, leader in followers.items():
        if leader in answers:  # the first one was answered already: so is its repeat
            answers[follower] = _replay(answers[leader])
        else:
            pending[follower] = leader
    return pending


async def _record_answers(
    session: AsyncSession, stored: Sequence[Arrival], answers: dict[int, Answer]
) -> None:
    rows = [
        {"b_key": a.idempotency.key, "b_body": answers[id(a)].model_dump(mode="json")}  # type: ignore[union-attr]
        for a in stored
        if a.idempotency is not None
    ]
    if rows:
        statement = (
            update(records)
            .where(records.c.key == bindparam("b_key"))
            .values(status=202, body=bindparam("b_body"))
        )
        await session.execute(statement, rows)


def _replay(answer: Answer) -> Answer:
    if isinstance(answer, Exception):
        return answer
    return Replayed.model_validate(answer.model_dump())


def _mismatch() -> Problem:
    return Problem(
        422,
        "Idempotency-Key reused",
        "this Idempotency-Key was used for a different submission",
        field="Idempotency-Key",
    )


async def _leads_for(
    session: AsyncSession, arrivals: Sequence[Arrival]
) -> dict[int, tuple[UUID, bool]]:
    """The lead of each arrival (keyed by ``id(arrival)``) and whether this batch created it."""
    found: dict[int, tuple[UUID, bool]] = {}
    by_email: dict[str, list[Arrival]] = {}
    by_phone: dict[str, list[Arrival]] = {}
    quarantined = []
    for arrival in arrivals:
        if arrival.quarantine:
            quarantined.append(arrival)
        elif arrival.submission.email:
            by_email.setdefault(arrival.submission.email, []).append(arrival)
        elif arrival.submission.phone:
            by_phone.setdefault(arrival.submission.phone, []).append(arrival)
        else:  # a submission always has one of them; a bare lead if not
            quarantined.append(arrival)
    if by_email:
        await _upsert(session, "email", by_email, found)
    if by_phone:
        await _by_phone(session, by_phone, found)
    if quarantined:
        rows = [_held_row(arrival) for arrival in quarantined]
        await session.execute(insert(leads), rows)
        for arrival, row in zip(quarantined, rows, strict=True):
            found[id(arrival)] = (row["id"], True)
    return found


async def _upsert(
    session: AsyncSession,
    key: str,
    groups: dict[str, list[Arrival]],
    found: dict[int, tuple[UUID, bool]],
) -> None:
    """Find or create the lead of each group by its key column (``email`` or ``phone_key``)."""
    candidates = {value: _lead_row(group) for value, group in sorted(groups.items())}
    if key == "phone_key":
        for value, row in candidates.items():
            row["phone_key"] = value
    rows = list(candidates.values())
    if session.get_bind().dialect.name == "postgresql":
        # One statement over arrays: SQLAlchemy binds 14 parameters, not 14 per row.
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        result = await session.execute(_unnest_upsert(key, tuple(columns)), columns)
    else:
        # One cached statement run for many rows (multi-row VALUES, SQLAlchemy's
        # "insertmanyvalues"); built with .values(rows) it would compile anew per batch size.
        result = await session.execute(_upsert_statement("sqlite", key), rows)
    ids = {value: lead_id for lead_id, value in result}
    for value, group in groups.items():
        lead_id = ids[value]
        created = lead_id == candidates[value]["id"]
        for position, arrival in enumerate(group):
            found[id(arrival)] = (lead_id, created and position == 0)


async def _by_phone(
    session: AsyncSession, groups: dict[str, list[Arrival]], found: dict[int, tuple[UUID, bool]]
) -> None:
    """Phone-only inquiries: the phone-only lead of that number, else the oldest lead with an
    email and that number, else a new phone-only lead (unique by ``phone_key``)."""
    rows = await session.execute(
        select(leads.c.id, leads.c.phone, leads.c.phone_key)
        .where(
            among(session, leads.c.phone, sorted(groups)),
            leads.c.quarantined.is_(False),
            leads.c.erased_at.is_(None),
        )
        .order_by(leads.c.created_at, leads.c.id)
    )
    known: dict[str, UUID] = {}
    phone_only: set[str] = set()
    for lead_id, phone, phone_key in rows:
        if phone_key is not None:
            phone_only.add(phone)
        known.setdefault(phone, lead_id)
    attach = {phone: known[phone] for phone in groups if phone in known and phone not in phone_only}
    upserts = {phone: group for phone, group in groups.items() if phone not in attach}
    if upserts:
        await _upsert(session, "phone_key", upserts, found)
    if attach:
        params = []
        for phone, lead_id in sorted(attach.items(), key=lambda item: str(item[1])):
            row = _lead_row(groups[phone])
            params.append(
                {"b_id": lead_id} | {f"b_{n}": row[n] for n in (*LEAD_FIELDS, "updated_at")}
            )
            for arrival in groups[phone]:
                found[id(arrival)] = (lead_id, False)
        await session.execute(_attach_statement(), params)


def _lead_row(group: Sequence[Arrival]) -> dict[str, Any]:
    """A new lead from one or more inquiries by the same person: later non-empty facts win."""
    first = group[0]
    row: dict[str, Any] = {
        "id": new_id(),
        "email": first.submission.email,
        "phone_key": None,
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


def _held_row(arrival: Arrival) -> dict[str, Any]:
    """A quarantined inquiry's own lead: no contact columns, nothing to merge or to route."""
    row = _lead_row([arrival]) | {"email": None, "quarantined": True}
    return row | dict.fromkeys(LEAD_FIELDS)


@cache
def _upsert_statement(dialect: str, key: str) -> Any:
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(leads)
    fresh = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[leads.c[key]],
        set_={name: func.coalesce(fresh[name], leads.c[name]) for name in LEAD_FIELDS}
        | {"updated_at": fresh.updated_at, "is_test": leads.c.is_test & fresh.is_test},
    ).returning(leads.c.id, leads.c[key])


@cache
def _unnest_upsert(key: str, columns: tuple[str, ...]) -> Any:
    """PostgreSQL's form of ``_upsert_statement``: the rows arrive as one array per column."""
    arrays = unnest_arrays(leads, columns)
    updates = ", ".join(
        [f"{name} = coalesce(excluded.{name}, leads.{name})" for name in LEAD_FIELDS]
        + ["updated_at = excluded.updated_at", "is_test = leads.is_test AND excluded.is_test"]
    )
    return text(
        f"INSERT INTO leads ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates} RETURNING id, {key}"
    ).columns(leads.c.id, leads.c[key])


@cache
def _attach_statement() -> Any:
    return (
        update(leads)
        .where(leads.c.id == bindparam("b_id"))
        .values(
            {name: func.coalesce(bindparam(f"b_{name}"), leads.c[name]) for name in LEAD_FIELDS}
            | {"updated_at": bindparam("b_updated_at")}
        )
    )
