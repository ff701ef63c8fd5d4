"""Routing rules as a kind of co-signed configuration (shared/cosign): how a text is validated
(it compiles, and names only teams that exist, checked again when it goes live), what going
live does (every process's cached directory goes stale, so the next routing uses it) and how it
is announced (``routing_rules.activated``; every ``lead.routed`` after it carries its version).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.models import Team
from services.routing.rules import RoutingInvalid, compile_routing
from services.routing.schemas import RoutingRulesIn
from services.routing.store import KIND, touch_directory
from shared.cosign.kind import Activation, Kind, Validated
from shared.cosign.models import CosignedVersion
from shared.events import CloudEvent, RoutingRulesActivated, RoutingRulesActivatedData
from shared.problems import Problem

SOURCE = "/leadflow/routing"


def invalid(error: RoutingInvalid) -> Problem:
    detail = f"the routing rules are invalid: {error}"
    return Problem(422, "Invalid routing rules", detail, field="content", errors=error.problems)


async def validate(session: AsyncSession, text: str) -> Validated:
    """The content's hash, if it compiles and names only teams that exist."""
    try:
        compiled = compile_routing(text)
    except RoutingInvalid as error:
        raise invalid(error) from None
    names = set(await session.scalars(select(Team.name)))
    wanted = {compiled.spec.default_queue, *(rule.team for rule in compiled.spec.rules)}
    unknown = sorted(wanted - names)
    if unknown:
        raise invalid(RoutingInvalid([f"no team named {name!r}" for name in unknown]))
    return Validated(compiled.content_hash)


def rules_of(text: str) -> dict[str, Any]:
    """Each rule by id, and the settings around them, for ``diff``."""
    spec = compile_routing(text).spec
    found: dict[str, Any] = {rule.id: rule.model_dump() for rule in spec.rules}
    found["default_queue"] = spec.default_queue
    found["account_match"] = spec.account_match.model_dump()
    found["reassignment"] = spec.reassignment.model_dump()
    return found


async def on_activate(session: AsyncSession, row: CosignedVersion) -> None:
    await validate(session, row.content)  # a team it names may have gone since it was proposed
    await touch_directory(session)


def activated(going: Activation) -> CloudEvent:
    row, previous = going.row, going.previous
    data = RoutingRulesActivatedData(
        version=row.version,
        content_hash=row.content_hash,
        previous=previous.version if previous else None,
        activated_by=going.by,
        approvers=dict(going.approvers),
    )
    subject = f"routing-rules-v{row.version}"
    return RoutingRulesActivated(source=SOURCE, subject=subject, time=going.now, data=data)


ROUTING = Kind(
    name=KIND,
    noun="routing rules",
    body=RoutingRulesIn,
    validate=validate,
    rules_of=rules_of,
    activated=activated,
    announces="routing_rules.activated",
    on_activate=on_activate,
    validate_summary="Check routing rules without storing them",
)
