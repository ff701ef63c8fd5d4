"""The intake HTTP app: routes over ``service``; the runtime is handed in, not built here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status

from services.intake.schemas import LeadAccepted, LeadSubmission, LeadView
from services.intake.service import find_lead
from services.intake.store import Arrival
from services.intake.writer import GroupCommitWriter
from services.scoring.api import router as qualification_router
from services.webhooks.api import router as webhooks_router
from shared import problems
from shared.auth import require_secret_key
from shared.health import health_router
from shared.limits import BodySizeLimit
from shared.problems import Problem
from shared.runtime import Runtime

PROBLEM = {"content": {problems.PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def secret_key(request: Request, runtime: RuntimeDep) -> None:
    require_secret_key(runtime.settings.auth, request)


router = APIRouter(prefix="/v1", tags=["leads"])


@router.post(
    "/leads",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=LeadAccepted,
    summary="Submit an inquiry",
    description="Stored durably before the answer: a 202 means the lead will be scored.",
    responses={413: PROBLEM, 422: PROBLEM},
)
async def post_lead(
    submission: LeadSubmission, request: Request, response: Response
) -> LeadAccepted:
    writer: GroupCommitWriter = request.app.state.writer
    accepted = await writer.submit(Arrival(submission, datetime.now(UTC)))
    response.headers["Location"] = f"/v1/leads/{accepted.lead_id}"
    return accepted


@router.get(
    "/leads/{lead_id}",
    response_model=LeadView,
    summary="A lead with its score and history",
    dependencies=[Depends(secret_key)],
    responses={401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM},
)
async def get_lead(lead_id: UUID, runtime: RuntimeDep) -> LeadView:
    async with runtime.sessions() as session:
        lead = await find_lead(session, lead_id)
    if lead is None:
        raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id")
    return lead


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Leadflow intake",
        version="0.1.0",
        description="Inquiries from web forms and ad platforms, stored before they are answered.",
    )
    app.state.runtime = runtime
    app.state.writer = GroupCommitWriter(
        runtime.sessions, runtime.settings, spawn=runtime.spawn, on_commit=runtime.notify_relay
    )
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.http.max_body_bytes)
    app.include_router(router)
    app.include_router(webhooks_router)
    app.include_router(qualification_router)
    app.include_router(health_router(runtime_of))
    return app
