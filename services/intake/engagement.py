"""Engagement and CRM outcomes posted back about a lead, found by id, email or CRM id.

Paths (secret key required; server to server):
  POST /v1/leads/{lead_id}/activities        POST /v1/leads/{lead_id}/outcomes
  POST /v1/leads/by-email/{email}/activities POST /v1/leads/by-email/{email}/outcomes
  POST /v1/leads/by-crm-id/{crm_id}/…        GET  /v1/leads/by-email/{email}, /by-crm-id/{crm_id}
Each post stores a row, a history entry and its event (``lead.activity`` / ``lead.outcome``) in
one transaction, with the lead row locked so the lead's events keep their order. An outcome that
carries ``crm_id`` records it on the lead, so the CRM can address the lead by its own id after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, FastAPI, Request, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.engagement_schemas import (
    ActivityIn,
    ActivityStored,
    OutcomeIn,
    OutcomeStored,
    outcome_problems,
    when_problems,
)
from services.intake.platform_models import LeadActivityRow, LeadOutcomeRow
from services.intake.schemas import LeadView
from services.intake.service import find_lead
from shared import problems
from shared.auth import secret_key
from shared.events import LeadActivity, LeadActivityData, LeadOutcome, LeadOutcomeData
from shared.ids import new_id
from shared.models import Lead, LeadHistory
from shared.outbox import stage
from shared.problems import Problem
from shared.runtime import Runtime

SOURCE = "/leadflow/intake"
PROBLEM = {"content": {problems.PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}
ERRORS = {401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 409: PROBLEM, 413: PROBLEM, 422: PROBLEM}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
router = APIRouter(prefix="/v1/leads", tags=["engagement"], dependencies=[Depends(secret_key)])
LeadRef = tuple[str, str]
"""How the caller names the lead: ("id" | "email" | "crm_id", value)."""


def normal_email(email: str) -> str:
    return email.strip().lower()


async def _find(session: AsyncSession, ref: LeadRef, *, lock: bool = True) -> Lead:
    """The lead (locked for the rest of the transaction), or a 404 naming how it was sought."""
    kind, value = ref
    if kind == "id":
        query = select(Lead).where(Lead.id == UUID(value))
    elif kind == "email":
        query = select(Lead).where(Lead.email == normal_email(value))
    else:
        query = select(Lead).where(Lead.crm_id == value)
    lead = await session.scalar(query.with_for_update() if lock else query)
    if lead is None:
        field = {"id": "lead_id", "email": "email", "crm_id": "crm_id"}[kind]
        raise Problem(404, "Not Found", f"no lead with {field} {value}", field=field)
    return lead


def _raise_first(found: list[tuple[str, str]]) -> None:
    if found:
        errors = [{"field": field, "detail": detail, "in": "body"} for field, detail in found]
        field, detail = found[0]
        raise Problem(422, "Invalid request", f"{field}: {detail}", field=field, errors=errors)


def _history(lead: Lead, kind: str, event_id: UUID, at: datetime, detail: dict) -> LeadHistory:
    return LeadHistory(
        id=new_id(), lead_id=lead.id, occurred_at=at, kind=kind, event_id=event_id, detail=detail
    )


async def record_activity(
    runtime: Runtime, ref: LeadRef, body: ActivityIn, now: datetime
) -> ActivityStored:
    _raise_first(when_problems(body.occurred_at, now))
    occurred = body.occurred_at or now
    async with runtime.sessions.begin() as session:
        lead = await _find(session, ref)
        activity_id = new_id()
        event = LeadActivity.about_lead(
            lead.id,
            LeadActivityData(
                lead_id=lead.id,
                kind=body.type,
                occurred_at=occurred,
                detail=body.properties,
                activity_id=activity_id,
                is_test=lead.is_test,
            ),
            source=SOURCE,
            time=now,
        )
        session.add(
            LeadActivityRow(
                id=activity_id,
                lead_id=lead.id,
                kind=body.type,
                occurred_at=occurred,
                received_at=now,
                properties=body.properties,
                event_id=event.id,
            )
        )
        detail = {"activity_id": str(activity_id), "type": body.type}
        session.add(_history(lead, event.type, event.id, occurred, detail))
        await stage(session, runtime.settings, event)
    runtime.notify_relay()
    return ActivityStored(activity_id=activity_id, lead_id=lead.id, event_id=event.id)


async def record_outcome(
    runtime: Runtime, ref: LeadRef, body: OutcomeIn, now: datetime
) -> OutcomeStored:
    _raise_first(outcome_problems(body, now))
    occurred = body.occurred_at or now
    async with runtime.sessions.begin() as session:
        lead = await _find(session, ref)
        if body.crm_id and body.crm_id != lead.crm_id:
            await _take_crm_id(session, lead, body.crm_id)
        outcome_id = new_id()
        event = LeadOutcome.about_lead(
            lead.id,
            LeadOutcomeData(
                lead_id=lead.id,
                outcome=body.outcome,
                occurred_at=occurred,
                reason=body.reason,
                amount=float(body.amount) if body.amount is not None else None,
                currency=body.currency,
                crm=body.crm,
                crm_id=lead.crm_id,
                outcome_id=outcome_id,
                is_test=lead.is_test,
            ),
            source=SOURCE,
            time=now,
        )
        session.add(_outcome_row(outcome_id, lead, body, occurred, now, event.id))
        detail = {"outcome_id": str(outcome_id), "outcome": body.outcome, "reason": body.reason}
        session.add(_history(lead, event.type, event.id, occurred, detail))
        await stage(session, runtime.settings, event)
    runtime.notify_relay()
    return OutcomeStored(outcome_id=outcome_id, lead_id=lead.id, event_id=event.id)


async def _take_crm_id(session: AsyncSession, lead: Lead, crm_id: str) -> None:
    """Record the CRM's id on the lead (the latest wins: CRMs re-key converted leads)."""
    holder = await session.scalar(select(Lead.id).where(Lead.crm_id == crm_id))
    if holder is not None and holder != lead.id:
        raise Problem(409, "Conflict", f"crm_id {crm_id} belongs to lead {holder}", field="crm_id")
    lead.crm_id = crm_id
    await session.flush()


def _outcome_row(
    outcome_id: UUID, lead: Lead, body: OutcomeIn, occurred: datetime, now: datetime, event: UUID
) -> LeadOutcomeRow:
    return LeadOutcomeRow(
        id=outcome_id,
        lead_id=lead.id,
        outcome=body.outcome,
        occurred_at=occurred,
        received_at=now,
        reason=body.reason,
        amount=body.amount,
        currency=body.currency,
        crm=body.crm,
        crm_id=body.crm_id,
        properties=body.properties,
        event_id=event,
    )


POST = {"status_code": status.HTTP_202_ACCEPTED, "responses": ERRORS}
Activity = Annotated[ActivityIn, Body()]
Outcome = Annotated[OutcomeIn, Body()]


@router.post("/{lead_id}/activities", **POST, summary="Record engagement")
async def activity(lead_id: UUID, body: Activity, runtime: RuntimeDep) -> ActivityStored:
    return await record_activity(runtime, ("id", str(lead_id)), body, datetime.now(UTC))


@router.post("/by-email/{email}/activities", **POST, summary="Record engagement (by email)")
async def activity_by_email(email: str, body: Activity, runtime: RuntimeDep) -> ActivityStored:
    return await record_activity(runtime, ("email", email), body, datetime.now(UTC))


@router.post("/by-crm-id/{crm_id}/activities", **POST, summary="Record engagement (by CRM id)")
async def activity_by_crm_id(crm_id: str, body: Activity, runtime: RuntimeDep) -> ActivityStored:
    return await record_activity(runtime, ("crm_id", crm_id), body, datetime.now(UTC))


@router.post("/{lead_id}/outcomes", **POST, summary="Record a CRM outcome")
async def outcome(lead_id: UUID, body: Outcome, runtime: RuntimeDep) -> OutcomeStored:
    return await record_outcome(runtime, ("id", str(lead_id)), body, datetime.now(UTC))


@router.post("/by-email/{email}/outcomes", **POST, summary="Record a CRM outcome (by email)")
async def outcome_by_email(email: str, body: Outcome, runtime: RuntimeDep) -> OutcomeStored:
    return await record_outcome(runtime, ("email", email), body, datetime.now(UTC))


@router.post("/by-crm-id/{crm_id}/outcomes", **POST, summary="Record a CRM outcome (by CRM id)")
async def outcome_by_crm_id(crm_id: str, body: Outcome, runtime: RuntimeDep) -> OutcomeStored:
    return await record_outcome(runtime, ("crm_id", crm_id), body, datetime.now(UTC))


async def _view(runtime: Runtime, ref: LeadRef) -> LeadView:
    async with runtime.sessions() as session:
        lead = await _find(session, ref, lock=False)
        view = await find_lead(session, lead.id)
    assert view is not None
    return view


@router.get("/by-email/{email}", responses=ERRORS, summary="A lead found by email")
async def lead_by_email(email: str, runtime: RuntimeDep) -> LeadView:
    return await _view(runtime, ("email", email))


@router.get("/by-crm-id/{crm_id}", responses=ERRORS, summary="A lead found by its CRM id")
async def lead_by_crm_id(crm_id: str, runtime: RuntimeDep) -> LeadView:
    return await _view(runtime, ("crm_id", crm_id))


def install(app: FastAPI) -> None:
    app.include_router(router)
