"""Goals as a kind of co-signed configuration (shared/cosign): the targets are an agreement
between marketing and sales, so a version goes live only with both sides' signatures. A text is
valid when it parses (services/analytics/goals.py); going live is announced as
``goals.activated``. Progress is always measured against the version live when it is read."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics.goals import GoalsInvalid, compile_goals
from shared.cosign.kind import MAX_CONTENT, Activation, Kind, Proposal, Validated
from shared.events import CloudEvent, GoalsActivated, GoalsActivatedData
from shared.problems import Problem

SOURCE = "/leadflow/analytics"
KIND = "goals"


class GoalsIn(Proposal):
    content: str = Field(min_length=1, max_length=MAX_CONTENT, description="The goals YAML")


def invalid(error: GoalsInvalid) -> Problem:
    return Problem(
        422, "Invalid goals", f"the goals are invalid: {error}", field="content",
        errors=error.problems,
    )  # fmt: skip


async def validate(_session: AsyncSession, text: str) -> Validated:
    try:
        compiled = compile_goals(text)
    except GoalsInvalid as error:
        raise invalid(error) from None
    extra = {"months": compiled.months, "teams": sorted(compiled.spec.teams)}
    return Validated(compiled.content_hash, name=compiled.spec.name, extra=extra)


def rules_of(text: str) -> dict[str, Any]:
    """Each part of the goals by name, for ``diff``."""
    spec = compile_goals(text).spec
    found: dict[str, Any] = {
        "start": spec.start,
        "revenue": spec.revenue.model_dump(),
        "deal_size": spec.deal_size,
        "monthly": spec.monthly.given(),
    }
    found.update({f"month.{m}": t.given() for m, t in spec.months.items()})
    found.update({f"team.{n}": t.given() for n, t in spec.teams.items()})
    found.update({f"owner.{e}": t.given() for e, t in spec.owners.items()})
    return found


def activated(going: Activation) -> CloudEvent:
    row, previous = going.row, going.previous
    spec = compile_goals(row.content).spec
    data = GoalsActivatedData(
        version=row.version,
        name=spec.name,
        start=spec.start,
        content_hash=row.content_hash,
        previous=previous.version if previous else None,
        activated_by=going.by,
        approvers=dict(going.approvers),
    )
    return GoalsActivated(source=SOURCE, subject=f"goals-v{row.version}", time=going.now, data=data)


GOALS = Kind(
    name=KIND,
    noun="goals",
    body=GoalsIn,
    validate=validate,
    rules_of=rules_of,
    activated=activated,
    announces="goals.activated",
    validate_summary="Check goals without storing them",
)
