"""HTTP routes of qualification: ruleset versions (shared/cosign), backtest, explain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.scoring import backtest, store, versions
from services.scoring.explain import explain
from shared import problems
from shared.auth import Caller, authenticate
from shared.cosign import store as cosigned
from shared.cosign.api import router_for
from shared.db import snapshot
from shared.deps import RuntimeDep
from shared.params import Version

ERRORS = problems.documented(401, 403, 404, 409, 422)


def _rulesets(request: Request) -> store.RulesetCache:
    state = request.app.state
    if not hasattr(state, "rulesets"):
        state.rulesets = store.RulesetCache()
    return state.rulesets


CallerDep = Annotated[Caller, Depends(authenticate)]
router = APIRouter(prefix="/v1", tags=["qualification"], responses=ERRORS)
router.include_router(router_for(versions.QUALIFICATION, prefix="/rulesets"))


@router.post("/rulesets/{version:int}/backtest", summary="Run a version over past leads")
async def run_backtest(
    version: Version,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    days: Annotated[int, Query(ge=1, le=3650, description="The window, in days")] = 90,
) -> dict[str, Any]:
    cache = _rulesets(request)
    async with runtime.sessions() as session:
        row = await cosigned.find(session, versions.QUALIFICATION, version)
        label = str(row.label)
        proposed = (label, await cache.by_label(session, label))
        active = await cache.active_or_sample(session)
        report = await backtest.run(session, active, proposed, now=datetime.now(UTC), days=days)
    return report.as_dict()


@router.get("/leads/{lead_id:uuid}/explain", summary="Why a lead is where it is")
async def explain_lead(
    lead_id: UUID, caller: CallerDep, runtime: RuntimeDep, request: Request
) -> dict[str, Any]:
    async with snapshot(runtime.sessions) as session:
        return await explain(
            session,
            lead_id,
            _rulesets(request),
            now=datetime.now(UTC),
            sections=getattr(request.app.state, "explain_sections", {}),
        )
