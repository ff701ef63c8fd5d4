"""Reviewing quarantined inquiries (spam caught by the honeypot): list, release or discard.

A quarantined inquiry sits on a lead of its own (``leads.quarantined``, no contact columns, no
event). Releasing it deletes that placeholder lead and stores the inquiry again — same id, same
submission and raw body, its original ``received_at`` — through the store every inquiry goes
through: it attaches to the person's lead (or makes one) and stages ``lead.received``, stamped
with the release time (when it entered the funnel). Discarding erases it: inquiry, history and
placeholder lead go.

Both lock the placeholder lead first, so a release happens once: a second release (a retry, or a
concurrent one that waited on the lock) finds the inquiry on its new lead and answers as the
first did, with ``Idempotent-Replayed: true``, emitting nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.forms import docs
from services.intake.models import LeadActivityRow, LeadOutcomeRow
from services.intake.schemas import LeadAccepted, LeadSubmission
from services.intake.settings import IntakeConfig, intake_config
from services.intake.store import Arrival, store_inquiries
from shared.auth import authenticate
from shared.deps import RuntimeDep
from shared.ids import new_id
from shared.models import Inquiry, Lead, LeadHistory, table_of
from shared.problems import Problem

log = logging.getLogger(__name__)
leads, inquiries, history = table_of(Lead), table_of(Inquiry), table_of(LeadHistory)
activities, outcomes = table_of(LeadActivityRow), table_of(LeadOutcomeRow)
RELEASED = "lead.released"
REPLAYED = "Idempotent-Replayed"
router = APIRouter(
    prefix="/v1/quarantine", tags=["quarantine"], dependencies=[Depends(authenticate)]
)


class QuarantinedInquiry(BaseModel):
    inquiry_id: UUID
    lead_id: UUID = Field(description="The placeholder lead it is held on")
    source: str
    reason: str = Field(description="Why it is held, e.g. honeypot")
    received_at: datetime
    submission: dict[str, Any] = Field(description="The normalised submission, as stored")
    raw: dict[str, Any] | None = Field(None, description="The body as posted (minus the key)")


class QuarantineList(BaseModel):
    items: list[QuarantinedInquiry]
    next_before: UUID | None = Field(
        None, description="Pass as `before` for the next (older) page; null on the last page"
    )


class Released(LeadAccepted):
    status: str = "released"


class Discarded(BaseModel):
    inquiry_id: UUID
    status: str = "discarded"


async def held(session: AsyncSession, *, limit: int, before: UUID | None) -> QuarantineList:
    """Quarantined inquiries, newest first."""
    query = (
        select(
            inquiries.c.id,
            inquiries.c.lead_id,
            inquiries.c.source,
            inquiries.c.quarantine_reason,
            inquiries.c.received_at,
            inquiries.c.submission,
            inquiries.c.raw,
        )
        .join(leads, leads.c.id == inquiries.c.lead_id)
        .where(leads.c.quarantined.is_(True), inquiries.c.quarantine_reason.is_not(None))
        .order_by(inquiries.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(inquiries.c.id < before)
    found = (await session.execute(query)).all()
    items = [
        QuarantinedInquiry(
            inquiry_id=row.id,
            lead_id=row.lead_id,
            source=row.source,
            reason=row.quarantine_reason,
            received_at=row.received_at,
            submission=row.submission,
            raw=row.raw,
        )
        for row in found[:limit]
    ]
    more = len(found) > limit
    return QuarantineList(items=items, next_before=items[-1].inquiry_id if more else None)


async def _locked(session: AsyncSession, inquiry_id: UUID) -> tuple[Row[Any], UUID | None]:
    """The inquiry, and its placeholder lead locked — ``None`` if it is no longer held."""
    inquiry = await _inquiry(session, inquiry_id)
    placeholder = await session.scalar(
        select(leads.c.id)
        .where(leads.c.id == inquiry.lead_id, leads.c.quarantined.is_(True))
        .with_for_update()
    )
    if placeholder is None:  # released or discarded while we waited for the lock: read it again
        return await _inquiry(session, inquiry_id), None
    if inquiry.quarantine_reason is None:
        return inquiry, None
    return inquiry, placeholder


async def _inquiry(session: AsyncSession, inquiry_id: UUID) -> Row[Any]:
    row = (
        await session.execute(select(inquiries).where(inquiries.c.id == inquiry_id))
    ).one_or_none()
    if row is None:
        raise Problem(404, "Not Found", f"no quarantined inquiry {inquiry_id}", field="inquiry_id")
    return row


async def release(
    session: AsyncSession, inquiry_id: UUID, *, settings: IntakeConfig, now: datetime
) -> tuple[Released, bool]:
    """Release in the caller's transaction; the answer, and whether it was released before."""
    inquiry, placeholder = await _locked(session, inquiry_id)
    if placeholder is None:
        return await _released_before(session, inquiry), True
    submission = _submission(inquiry.submission, settings)
    await session.execute(delete(inquiries).where(inquiries.c.id == inquiry_id))
    [answer] = await store_inquiries(
        session,
        [Arrival(submission, now, inquiry_id=inquiry_id, raw=inquiry.raw)],
        settings=settings,
    )
    if isinstance(answer, Exception):
        raise answer
    await session.execute(
        update(inquiries)
        .where(inquiries.c.id == inquiry_id)
        .values(received_at=inquiry.received_at)
    )
    detail = {
        "inquiry_id": str(inquiry_id),
        "reason": inquiry.quarantine_reason,
        "new_lead": answer.new_lead,
    }
    await session.execute(
        insert(history).values(
            id=new_id(),
            lead_id=answer.lead_id,
            occurred_at=now,
            kind=RELEASED,
            event_id=None,
            detail=detail,
        )
    )
    await _drop_placeholder(session, placeholder, moving_to=answer.lead_id)
    released = Released(lead_id=answer.lead_id, inquiry_id=inquiry_id, new_lead=answer.new_lead)
    return released, False


async def discard(session: AsyncSession, inquiry_id: UUID) -> Discarded:
    """Erase a quarantined inquiry and its placeholder lead, in the caller's transaction."""
    inquiry, placeholder = await _locked(session, inquiry_id)
    if placeholder is None:
        raise Problem(
            409,
            "Conflict",
            f"inquiry {inquiry_id} is not quarantined (it is on lead {inquiry.lead_id}); "
            "erase that lead instead",
            field="inquiry_id",
        )
    await session.execute(delete(inquiries).where(inquiries.c.id == inquiry_id))
    await _drop_placeholder(session, placeholder, moving_to=None)
    return Discarded(inquiry_id=inquiry_id)


def _submission(stored: dict[str, Any], settings: IntakeConfig) -> LeadSubmission:
    try:
        context = {"region": settings.intake.default_region}
        return LeadSubmission.model_validate(stored, context=context)
    except ValidationError as error:
        item = error.errors()[0]
        field = ".".join(str(part) for part in item["loc"]) or "submission"
        detail = f"the held submission cannot be released: {field}: {item['msg']}"
        raise Problem(422, "Invalid request", detail, field=f"submission.{field}") from None


async def _drop_placeholder(
    session: AsyncSession, placeholder: UUID, *, moving_to: UUID | None
) -> None:
    """Delete the placeholder lead; anything reported about it moves to the real lead (or, on
    discard, goes with it)."""
    for table in (activities, outcomes):
        where = table.c.lead_id == placeholder
        if moving_to is None:
            await session.execute(delete(table).where(where))
        else:
            await session.execute(update(table).where(where).values(lead_id=moving_to))
    await session.execute(delete(history).where(history.c.lead_id == placeholder))
    await session.execute(delete(leads).where(leads.c.id == placeholder))


async def _released_before(session: AsyncSession, inquiry: Row[Any]) -> Released:
    entries = await session.scalars(
        select(history.c.detail).where(
            history.c.lead_id == inquiry.lead_id, history.c.kind == RELEASED
        )
    )
    for detail in entries:
        if detail.get("inquiry_id") == str(inquiry.id):
            return Released(
                lead_id=inquiry.lead_id,
                inquiry_id=inquiry.id,
                new_lead=bool(detail.get("new_lead")),
            )
    raise Problem(409, "Conflict", f"inquiry {inquiry.id} is not quarantined", field="inquiry_id")


@router.get(
    "",
    summary="Quarantined inquiries, newest first",
    responses=docs.responses(401, 403, 422),
)
async def list_quarantined(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[UUID | None, Query(description="`next_before` of the previous page")] = None,
) -> QuarantineList:
    async with runtime.sessions() as session:
        return await held(session, limit=limit, before=before)


@router.post(
    "/{inquiry_id:uuid}/release",
    summary="Release a quarantined inquiry: it becomes a normal inquiry and is routed",
    description="The inquiry attaches to the person's lead (or makes one) and `lead.received` is "
    f"emitted, once: releasing again answers the same, with `{REPLAYED}: true`.",
    responses={
        200: {
            "description": "Released (or released before)",
            "headers": {REPLAYED: {"schema": {"type": "string"}}},
        },
        **docs.responses(401, 403, 404, 409, 422),
    },
)
async def release_inquiry(inquiry_id: UUID, runtime: RuntimeDep, response: Response) -> Released:
    async with runtime.sessions.begin() as session:
        released, before = await release(
            session, inquiry_id, settings=intake_config(runtime.settings), now=datetime.now(UTC)
        )
    if before:
        response.headers[REPLAYED] = "true"
    else:
        runtime.notify_relay()
        log.info("quarantined inquiry %s released to lead %s", inquiry_id, released.lead_id)
    return released


@router.delete(
    "/{inquiry_id:uuid}",
    summary="Discard (erase) a quarantined inquiry",
    responses=docs.responses(401, 403, 404, 409, 422),
)
async def discard_inquiry(inquiry_id: UUID, runtime: RuntimeDep) -> Discarded:
    async with runtime.sessions.begin() as session:
        discarded = await discard(session, inquiry_id)
    log.info("quarantined inquiry %s discarded", inquiry_id)
    return discarded


def install(app: FastAPI) -> None:
    app.include_router(router)
