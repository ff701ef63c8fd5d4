"""HTTP routes of qualification: ruleset versions, approvals, activation, backtest, explain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import backtest, store, versions
from services.scoring.explain import explain
from services.scoring.models import Ruleset
from services.scoring.ruleset import RulesetInvalid, compile_ruleset
from shared import problems
from shared.auth import Caller, authenticate
from shared.cosign import ApprovalRequest
from shared.deps import RuntimeDep
from shared.problems import Problem

PROBLEM = {"content": {problems.PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}
ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys((401, 403, 404, 409, 422), PROBLEM)


def _rulesets(request: Request) -> store.RulesetCache:
    state = request.app.state
    if not hasattr(state, "rulesets"):
        state.rulesets = store.RulesetCache()
    return state.rulesets


CallerDep = Annotated[Caller, Depends(authenticate)]
router = APIRouter(prefix="/v1", tags=["qualification"], responses=ERRORS)


class RulesetText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=1_000_000, description="The ruleset YAML")
    note: str = Field("", max_length=2000, description="What changes and why")


@router.post("/rulesets/validate", summary="Check a ruleset without storing it")
async def validate(body: RulesetText, caller: CallerDep) -> dict[str, Any]:
    try:
        compiled = compile_ruleset(body.content)
    except RulesetInvalid as error:
        raise versions.invalid(error) from None
    return {"valid": True, "content_hash": compiled.content_hash, "conditions": len(compiled.slots)}


@router.post("/rulesets", status_code=status.HTTP_201_CREATED, summary="Propose a new version")
async def propose(body: RulesetText, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions.begin() as session:
        row = await versions.propose(
            session, body.content, by=caller.name, note=body.note, now=datetime.now(UTC)
        )
        return versions.view(row, [])


@router.get("/rulesets", summary="Every version, newest first, with its approvals")
async def history(caller: CallerDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        return await versions.history(session)


@router.get("/rulesets/{version}", summary="One version with its content")
async def show(version: int, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await versions.find(session, version)
        return {
            **versions.view(row, await versions.approvals_of(session, row)),
            "content": row.content,
        }


@router.post(
    "/rulesets/{version}/approvals",
    status_code=status.HTTP_201_CREATED,
    summary="Sign a version for your side (needs the approver role of that side)",
)
async def approve(
    version: int, body: ApprovalRequest, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    async with runtime.sessions.begin() as session:
        approval = await versions.approve(
            session,
            version,
            caller=caller,
            side=body.side,
            signed_hash=body.content_hash,
            now=datetime.now(UTC),
        )
        return {"version": version, "side": approval.side, "approver": approval.approver}


@router.post("/rulesets/{version}/activate", summary="Make a co-signed version the live one")
async def activate(version: int, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions.begin() as session:
        row = await versions.activate(
            session, runtime.settings, version, by=caller.name, now=datetime.now(UTC)
        )
        view = versions.view(row, await versions.approvals_of(session, row))
    runtime.notify_relay()
    return view


@router.get("/rulesets/{version}/diff", summary="What changed against another version")
async def diff(
    version: int,
    caller: CallerDep,
    runtime: RuntimeDep,
    against: Annotated[int | None, Query(description="Default: the active version")] = None,
) -> dict[str, Any]:
    async with runtime.sessions() as session:
        if against is None:
            against = await _active_version(session)
        return await versions.diff(session, against, version)


@router.post("/rulesets/{version}/backtest", summary="Run a version over past leads")
async def run_backtest(
    version: int,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    days: Annotated[int, Query(ge=1, le=3650, description="The window, in days")] = 90,
) -> dict[str, Any]:
    cache = _rulesets(request)
    async with runtime.sessions() as session:
        row = await versions.find(session, version)
        proposed = (row.label, await cache.by_label(session, row.label))
        active = await cache.active_or_sample(session)
        report = await backtest.run(session, active, proposed, now=datetime.now(UTC), days=days)
    return report.as_dict()


@router.get("/leads/{lead_id}/explain", summary="Why a lead is where it is")
async def explain_lead(
    lead_id: UUID, caller: CallerDep, runtime: RuntimeDep, request: Request
) -> dict[str, Any]:
    async with runtime.sessions() as session:
        return await explain(
            session,
            lead_id,
            _rulesets(request),
            now=datetime.now(UTC),
            sections=getattr(request.app.state, "explain_sections", {}),
        )


async def _active_version(session: AsyncSession) -> int:
    found = await session.scalar(select(Ruleset.version).where(Ruleset.status == "active"))
    if found is None:
        raise Problem(
            409, "Conflict", "no version is active; name one with ?against=", field="against"
        )
    return int(found)
