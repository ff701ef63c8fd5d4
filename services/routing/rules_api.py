"""HTTP routes of routing rules versions: validate, propose, approve, activate, diff, history.

The same workflow as qualification rulesets (``/v1/rulesets``): proposing needs any secret key,
approving needs the approver role of the side (``auth.principals``), activating needs both sides.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel, ConfigDict, Field

from services.routing import versions
from shared import problems
from shared.auth import Caller, authenticate
from shared.cosign import ApprovalRequest
from shared.deps import RuntimeDep

CallerDep = Annotated[Caller, Depends(authenticate)]
CONFLICT = {"content": {problems.PROBLEM_JSON: {}}, "description": "RFC 9457 problem details"}
router = APIRouter(prefix="/routing/rulesets", responses={409: CONFLICT})


class RoutingRulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content: str = Field(min_length=1, max_length=1_000_000, description="The routing rules YAML")
    note: str = Field("", max_length=2000, description="What changes and why")


@router.post("/validate", summary="Check routing rules without storing them")
async def validate(body: RoutingRulesIn, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions() as session:
        digest = await versions.validate(session, body.content)
    return {"valid": True, "content_hash": digest}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Propose a new version")
async def propose(body: RoutingRulesIn, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions.begin() as session:
        row = await versions.propose(
            session, body.content, by=caller.name, note=body.note, now=datetime.now(UTC)
        )
        return versions.view(row, [])


@router.get("", summary="Every version, newest first, with its approvals")
async def history(caller: CallerDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        return await versions.history(session)


@router.get("/{version}", summary="One version with its content")
async def show(version: int, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions() as session:
        row = await versions.find(session, version)
        approvals = await versions.approvals_of(session, version)
        return {**versions.view(row, approvals), "content": row.text}


@router.post(
    "/{version}/approvals",
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


@router.post("/{version}/activate", summary="Make a co-signed version the live one")
async def activate(version: int, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.sessions.begin() as session:
        row = await versions.activate(
            session, runtime.settings, version, by=caller.name, now=datetime.now(UTC)
        )
        view = versions.view(row, await versions.approvals_of(session, version))
    runtime.notify_relay()
    return view


@router.get("/{version}/diff", summary="What changed against another version")
async def diff(
    version: int,
    caller: CallerDep,
    runtime: RuntimeDep,
    against: Annotated[int | None, Query(description="Default: the active version")] = None,
) -> dict[str, Any]:
    async with runtime.sessions() as session:
        if against is None:
            against = await versions.active_version(session)
        return await versions.diff(session, against, version)
