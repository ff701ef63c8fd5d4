"""Routes for engagement and CRM outcomes (``engagement`` stores them).

Paths (secret key required; server to server):
  POST /v1/leads/{lead_id}/activities        POST /v1/leads/{lead_id}/outcomes
  POST /v1/leads/by-email/{email}/activities POST /v1/leads/by-email/{email}/outcomes
  POST /v1/leads/by-crm-id/{crm_id}/…        GET  /v1/leads/by-email/{email}, /by-crm-id/{crm_id}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Response, status

from services.intake.engagement.schemas import ActivityIn, ActivityStored, OutcomeIn, OutcomeStored
from services.intake.engagement.store import (
    IDEMPOTENCY_KEY,
    REPLAYED,
    LeadRef,
    ReplayedActivity,
    ReplayedOutcome,
    Retry,
    find_by_ref,
    record_activity,
    record_outcome,
)
from services.intake.forms.store import find_lead
from services.intake.schemas import LeadView
from shared import problems
from shared.auth import Caller, authenticate
from shared.db import snapshot
from shared.deps import RuntimeDep
from shared.runtime import Runtime

ERRORS = problems.documented(401, 403, 404, 409, 413, 422)


router = APIRouter(prefix="/v1/leads", tags=["engagement"], dependencies=[Depends(authenticate)])


POST: dict[str, Any] = {
    "status_code": status.HTTP_202_ACCEPTED,
    "responses": ERRORS
    | {
        202: {
            "description": "Stored, or the first answer to a retry",
            "headers": {
                REPLAYED: {
                    "schema": {"type": "string"},
                    "description": "`true` on the first answer given again to a retry",
                }
            },
        }
    },
}
Activity = Annotated[ActivityIn, Body()]
Outcome = Annotated[OutcomeIn, Body()]
CallerDep = Annotated[Caller, Depends(authenticate)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY,
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="A retry with the same key (from the same caller) gets the first answer",
    ),
]


def _answer(response: Response, stored: ActivityStored | OutcomeStored) -> Any:
    if isinstance(stored, ReplayedActivity | ReplayedOutcome):
        response.headers[REPLAYED] = "true"
    return stored


async def _activity(
    ref: LeadRef, body: ActivityIn, runtime: Runtime, caller: Caller, key: str | None, out: Response
) -> ActivityStored:
    retry = Retry(caller.name, key, body.external_id)
    return _answer(out, await record_activity(runtime, ref, body, datetime.now(UTC), retry))


async def _outcome(
    ref: LeadRef, body: OutcomeIn, runtime: Runtime, caller: Caller, key: str | None, out: Response
) -> OutcomeStored:
    retry = Retry(caller.name, key, body.external_id)
    return _answer(out, await record_outcome(runtime, ref, body, datetime.now(UTC), retry))


@router.post("/{lead_id:uuid}/activities", **POST, summary="Record engagement")
async def activity(
    lead_id: UUID,
    body: Activity,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> ActivityStored:
    return await _activity(("id", str(lead_id)), body, runtime, caller, key, response)


@router.post("/by-email/{email}/activities", **POST, summary="Record engagement (by email)")
async def activity_by_email(
    email: str,
    body: Activity,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> ActivityStored:
    return await _activity(("email", email), body, runtime, caller, key, response)


@router.post("/by-crm-id/{crm_id}/activities", **POST, summary="Record engagement (by CRM id)")
async def activity_by_crm_id(
    crm_id: str,
    body: Activity,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> ActivityStored:
    return await _activity(("crm_id", crm_id), body, runtime, caller, key, response)


@router.post("/{lead_id:uuid}/outcomes", **POST, summary="Record a CRM outcome")
async def outcome(
    lead_id: UUID,
    body: Outcome,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> OutcomeStored:
    return await _outcome(("id", str(lead_id)), body, runtime, caller, key, response)


@router.post("/by-email/{email}/outcomes", **POST, summary="Record a CRM outcome (by email)")
async def outcome_by_email(
    email: str,
    body: Outcome,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> OutcomeStored:
    return await _outcome(("email", email), body, runtime, caller, key, response)


@router.post("/by-crm-id/{crm_id}/outcomes", **POST, summary="Record a CRM outcome (by CRM id)")
async def outcome_by_crm_id(
    crm_id: str,
    body: Outcome,
    runtime: RuntimeDep,
    caller: CallerDep,
    response: Response,
    key: IdempotencyKey = None,
) -> OutcomeStored:
    return await _outcome(("crm_id", crm_id), body, runtime, caller, key, response)


async def _view(runtime: Runtime, ref: LeadRef) -> LeadView:
    async with snapshot(runtime.sessions) as session:
        lead = await find_by_ref(session, ref, lock=False)
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
