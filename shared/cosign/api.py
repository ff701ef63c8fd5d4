"""A kind's HTTP routes: validate, propose, history, show, approve, activate, diff.

Proposing needs any secret key; approving needs the approver role of the side
(``auth.principals``); activating needs both sides' signatures. No ``from __future__ import
annotations`` here: FastAPI reads the routes' types from their annotations as they are.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, status

from shared.auth import Caller, authenticate
from shared.cosign import store
from shared.cosign.checks import ApprovalRequest
from shared.cosign.kind import Kind, Proposal
from shared.deps import RuntimeDep
from shared.params import Version

CallerDep = Annotated[Caller, Depends(authenticate)]
Route = TypeVar("Route", bound=Callable[..., Any])


def _taking(body: type[Proposal]) -> Callable[[Route], Route]:
    """The route's body is the kind's own model: FastAPI reads it from the annotation."""

    def annotate(route: Route) -> Route:
        route.__annotations__["body"] = body
        return route

    return annotate


def router_for(
    kind: Kind, *, prefix: str, responses: dict[int | str, dict[str, Any]] | None = None
) -> APIRouter:
    """The routes of ``kind`` under ``prefix``, for a service to include in its router (whose
    prefix, tags and dependencies they take)."""
    router = APIRouter(prefix=prefix, responses=responses)

    @router.post("/validate", summary=kind.validate_summary)
    @_taking(kind.body)
    async def validate(body: Proposal, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
        async with runtime.sessions() as session:
            validated = await kind.validate(session, body.content)
        return {"valid": True, "content_hash": validated.content_hash, **validated.extra}

    @router.post("", status_code=status.HTTP_201_CREATED, summary="Propose a new version")
    @_taking(kind.body)
    async def propose(body: Proposal, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
        async with runtime.sessions.begin() as session:
            row = await store.propose(
                session,
                kind,
                body.content,
                by=caller.name,
                note=body.note,
                now=datetime.now(UTC),
            )
            return store.view(kind, row, [])

    @router.get("", summary="Every version, newest first, with its approvals")
    async def history(caller: CallerDep, runtime: RuntimeDep) -> list[dict[str, Any]]:
        async with runtime.sessions() as session:
            return await store.history(session, kind)

    @router.get("/{version:int}", summary="One version with its content")
    async def show(version: Version, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
        async with runtime.sessions() as session:
            row = await store.find(session, kind, version)
            approvals = await store.approvals_of(session, row)
            return {**store.view(kind, row, approvals), "content": row.content}

    @router.post(
        "/{version:int}/approvals",
        status_code=status.HTTP_201_CREATED,
        summary="Sign a version for your side (needs the approver role of that side)",
    )
    async def approve(
        version: Version, body: ApprovalRequest, caller: CallerDep, runtime: RuntimeDep
    ) -> dict[str, Any]:
        async with runtime.sessions.begin() as session:
            approval = await store.approve(
                session,
                kind,
                version,
                caller=caller,
                side=body.side,
                signed_hash=body.content_hash,
                now=datetime.now(UTC),
            )
            return {"version": version, "side": approval.side, "approver": approval.approver}

    @router.post("/{version:int}/activate", summary="Make a co-signed version the live one")
    async def activate(version: Version, caller: CallerDep, runtime: RuntimeDep) -> dict[str, Any]:
        async with runtime.sessions.begin() as session:
            row = await store.activate(
                session, runtime.settings, kind, version, by=caller.name, now=datetime.now(UTC)
            )
            view = store.view(kind, row, await store.approvals_of(session, row))
        runtime.notify_relay()
        return view

    @router.get("/{version:int}/diff", summary="What changed against another version")
    async def diff(
        version: Version,
        caller: CallerDep,
        runtime: RuntimeDep,
        against: Annotated[Version | None, Query(description="Default: the active version")] = None,
    ) -> dict[str, Any]:
        async with runtime.sessions() as session:
            if against is None:
                against = await store.active_version(session, kind)
            return await store.diff(session, kind, against, version)

    return router
