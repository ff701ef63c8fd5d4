"""HTTP routes of routing: owners, teams, accounts, CSV import, reassignment; routing rules
versions (shared/cosign).

Every route needs a secret key. Changes are applied in one transaction and committed before the
answer; bad input is an RFC 9457 problem naming the field, and nothing is applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import importer, store
from services.routing.assign import LeadNotFound, LeadQuarantined
from services.routing.explain import routing_explanation
from services.routing.models import Account, Membership, Rep, Team
from services.routing.reassign import reassign_lead
from services.routing.rules import RoutingInvalid
from services.routing.schemas import (
    AccountIn,
    AccountView,
    ReassignIn,
    RepIn,
    RepView,
    TeamIn,
    TeamView,
)
from services.routing.versions import ROUTING
from shared import problems
from shared.auth import secret_key
from shared.cosign.api import router_for
from shared.deps import RuntimeDep
from shared.params import Instant
from shared.problems import Problem

QUARANTINED = "lead {} is quarantined (held back as spam): release its inquiry first"
ERRORS = problems.documented(401, 403, 404, 422)


router = APIRouter(
    prefix="/v1", tags=["routing"], responses=ERRORS, dependencies=[Depends(secret_key)]
)
router.include_router(
    router_for(ROUTING, prefix="/routing/rulesets", responses={409: problems.PROBLEM}),
)


def _invalid(error: store.DirectoryInvalid | RoutingInvalid) -> Problem:
    if isinstance(error, RoutingInvalid):
        return Problem(422, "Invalid routing rules", str(error), field="content")
    return Problem(422, "Unprocessable Content", str(error), field=error.field)


@router.post("/teams", response_model=TeamView, status_code=status.HTTP_200_OK)
async def put_team(team: TeamIn, runtime: RuntimeDep) -> TeamView:
    """Create or update a team or queue (by name)."""
    async with runtime.sessions.begin() as session:
        try:
            team_id = await store.put_team(session, team, datetime.now(UTC))
        except store.DirectoryInvalid as error:
            raise _invalid(error) from None
        return (await _teams(session, team_id))[0]


@router.get("/teams", response_model=list[TeamView])
async def list_teams(runtime: RuntimeDep) -> list[TeamView]:
    async with runtime.sessions() as session:
        return await _teams(session)


@router.post("/owners", response_model=RepView)
async def put_owner(rep: RepIn, runtime: RuntimeDep) -> RepView:
    """Create or update a rep (by email); its teams become exactly ``teams``."""
    async with runtime.sessions.begin() as session:
        try:
            rep_id = await store.put_rep(session, rep, datetime.now(UTC))
        except store.DirectoryInvalid as error:
            raise _invalid(error) from None
        return (await _reps(session, rep_id))[0]


@router.get("/owners", response_model=list[RepView])
async def list_owners(runtime: RuntimeDep) -> list[RepView]:
    async with runtime.sessions() as session:
        return await _reps(session)


@router.get("/owners/{rep_id:uuid}", response_model=RepView)
async def get_owner(rep_id: UUID, runtime: RuntimeDep) -> RepView:
    async with runtime.sessions() as session:
        found = await _reps(session, rep_id)
    if not found:
        raise Problem(404, "Not Found", f"no rep {rep_id}", field="rep_id")
    return found[0]


class Availability(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(None, pattern="^(active|deactivated)$")
    away_until: Instant | None = Field(None, description="On leave until (timezone-aware)")
    back: StrictBool = Field(False, description="Back from leave now")


@router.post("/owners/{rep_id:uuid}/availability", response_model=RepView)
async def set_availability(rep_id: UUID, change: Availability, runtime: RuntimeDep) -> RepView:
    if change.away_until is not None and change.away_until.tzinfo is None:
        raise Problem(422, "Unprocessable Content", "needs a time zone", field="away_until")
    async with runtime.sessions.begin() as session:
        email = await session.scalar(select(Rep.email).where(Rep.id == rep_id))
        if email is None:
            raise Problem(404, "Not Found", f"no rep {rep_id}", field="rep_id")
        await store.set_availability(
            session,
            email,
            datetime.now(UTC),
            status=change.status,
            away_until=change.away_until,
            back=change.back,
        )
        return (await _reps(session, rep_id))[0]


@router.post(
    "/owners/import",
    summary="Import reps from CSV (all rows or none)",
    openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_owners(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    text = (await request.body()).decode("utf-8", errors="replace")
    reps, errors = importer.parse_reps(text)
    if errors:
        raise Problem(422, "Invalid CSV", "; ".join(errors[:50]), field="body", errors=errors)
    async with runtime.sessions.begin() as session:
        try:
            report = await importer.apply_reps(session, reps, datetime.now(UTC))
        except store.DirectoryInvalid as error:
            raise _invalid(error) from None
    return {"imported": report.rows, "created_teams": report.created_teams}


@router.post("/accounts", response_model=AccountView)
async def put_account(account: AccountIn, runtime: RuntimeDep) -> AccountView:
    """Create or update a customer account (by domain, else by name)."""
    async with runtime.sessions.begin() as session:
        try:
            account_id = await store.put_account(session, account, datetime.now(UTC))
        except store.DirectoryInvalid as error:
            raise _invalid(error) from None
        row = await session.get(Account, account_id)
        assert row is not None
        return AccountView(id=row.id, name=row.name, domain=row.domain, owner_id=row.owner_id)


@router.get("/accounts", response_model=list[AccountView])
async def list_accounts(runtime: RuntimeDep) -> list[AccountView]:
    async with runtime.sessions() as session:
        rows = await session.scalars(select(Account).order_by(Account.name))
        return [
            AccountView(id=a.id, name=a.name, domain=a.domain, owner_id=a.owner_id) for a in rows
        ]


@router.delete("/accounts/{account_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_account(account_id: UUID, runtime: RuntimeDep) -> Response:
    async with runtime.sessions.begin() as session:
        if not await store.delete_account(session, account_id):
            raise Problem(404, "Not Found", f"no account {account_id}", field="account_id")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/leads/{lead_id:uuid}/reassign",
    summary="Give the lead to someone else",
    responses=problems.documented(409),
)
async def reassign(
    lead_id: UUID, request: Annotated[ReassignIn, Body()], runtime: RuntimeDep
) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with runtime.sessions.begin() as session:
        try:
            to = (
                await store.rep_id_of(session, request.owner_email, "owner_email")
                if request.owner_email
                else None
            )
        except store.DirectoryInvalid as error:
            raise _invalid(error) from None
        try:
            decision = await reassign_lead(
                session,
                lead_id,
                now=now,
                settings=runtime.settings,
                trigger="requested",
                why=request.reason,
                to=to,
            )
        except LeadQuarantined:
            raise Problem(409, "Conflict", QUARANTINED.format(lead_id), field="lead_id") from None
        except LeadNotFound:
            raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id") from None
    runtime.notify_relay()
    return {
        "lead_id": lead_id,
        "outcome": decision.outcome,
        "owner_id": decision.owner_id,
        "team": decision.team,
        "rule": decision.rule,
        "reason": decision.reason,
        "candidates": decision.candidates,
    }


@router.get(
    "/leads/{lead_id:uuid}/routing", summary="Every routing decision about the lead, and why"
)
async def lead_routing(lead_id: UUID, runtime: RuntimeDep) -> list[dict[str, Any]]:
    async with runtime.sessions() as session:
        return await routing_explanation(session, lead_id)


async def _teams(session: AsyncSession, team_id: UUID | None = None) -> list[TeamView]:
    query = select(Team).order_by(Team.name)
    if team_id is not None:
        query = query.where(Team.id == team_id)
    members: dict[UUID, list[str]] = {}
    for tid, email in await session.execute(
        select(Membership.team_id, Rep.email).join(Rep, Rep.id == Membership.rep_id)
    ):
        members.setdefault(tid, []).append(email)
    return [
        TeamView(
            id=t.id,
            name=t.name,
            kind=t.kind,
            strategy=t.strategy,
            outside_hours=t.outside_hours,
            manager_id=t.manager_id,
            members=sorted(members.get(t.id, [])),
        )
        for t in await session.scalars(query)
    ]


async def _reps(session: AsyncSession, rep_id: UUID | None = None) -> list[RepView]:
    query = select(Rep).order_by(Rep.email)
    if rep_id is not None:
        query = query.where(Rep.id == rep_id)
    teams: dict[UUID, list[str]] = {}
    for rid, name in await session.execute(
        select(Membership.rep_id, Team.name).join(Team, Team.id == Membership.team_id)
    ):
        teams.setdefault(rid, []).append(name)
    return [
        RepView(
            id=r.id,
            email=r.email,
            name=r.name,
            teams=sorted(teams.get(r.id, [])),
            weight=r.weight,
            status=r.status,
            away_until=r.away_until,
            time_zone=r.time_zone,
            working_hours=r.working_hours,
            max_open=r.max_open,
            max_per_day=r.max_per_day,
            open_leads=r.open_leads,
            roles=r.roles,
            territories=r.territories,
            segments=r.segments,
            languages=r.languages,
            products=r.products,
        )
        for r in await session.scalars(query)
    ]
