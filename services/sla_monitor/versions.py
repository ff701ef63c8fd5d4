"""SLA policies as a kind of co-signed configuration (shared/cosign): response timelines are an
agreement between marketing and sales, so a version goes live only with both sides' signatures.
A text is valid when it compiles (every condition type-checks, every calendar, contact group and
duration resolves); going live is announced as ``sla_policies.activated``, and clocks started
after it carry its version. Running clocks keep the ladder they started with."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.policy import PolicyInvalid, compile_policies
from services.sla_monitor.schemas import SlaPoliciesIn
from services.sla_monitor.store import KIND
from shared.cosign.kind import Activation, Kind, Validated
from shared.events import CloudEvent, SlaPoliciesActivated, SlaPoliciesActivatedData
from shared.problems import Problem

SOURCE = "/leadflow/sla-monitor"


def invalid(error: PolicyInvalid) -> Problem:
    detail = f"the SLA policies are invalid: {error}"
    return Problem(422, "Invalid SLA policies", detail, field="content", errors=error.problems)


async def validate(_session: AsyncSession, text: str) -> Validated:
    try:
        compiled = compile_policies(text)
    except PolicyInvalid as error:
        raise invalid(error) from None
    extra = {"policies": [p.id for p in compiled.spec.policies]}
    return Validated(compiled.content_hash, name=compiled.spec.name, extra=extra)


def rules_of(text: str) -> dict[str, Any]:
    """Each policy by id, and the calendars and contacts around them, for ``diff``."""
    spec = compile_policies(text).spec
    found: dict[str, Any] = {f"policy.{p.id}": p.model_dump() for p in spec.policies}
    found.update({f"calendar.{n}": c.model_dump(mode="json") for n, c in spec.calendars.items()})
    found["calendar"] = spec.calendar
    found["teams"], found["owners"] = spec.teams, spec.owners
    found["contacts"], found["team_contacts"] = spec.contacts, spec.team_contacts
    return found


def activated(going: Activation) -> CloudEvent:
    row, previous = going.row, going.previous
    data = SlaPoliciesActivatedData(
        version=row.version,
        content_hash=row.content_hash,
        previous=previous.version if previous else None,
        activated_by=going.by,
        approvers=dict(going.approvers),
    )
    subject = f"sla-policies-v{row.version}"
    return SlaPoliciesActivated(source=SOURCE, subject=subject, time=going.now, data=data)


SLA = Kind(
    name=KIND,
    noun="SLA policies",
    body=SlaPoliciesIn,
    validate=validate,
    rules_of=rules_of,
    activated=activated,
    announces="sla_policies.activated",
    validate_summary="Check SLA policies without storing them",
)
