"""Qualification rulesets as a kind of co-signed configuration (shared/cosign): how a text is
validated (it compiles, every CEL condition type-checks), labelled (``v3-1a2b3c4d``: leads and
events carry it) and announced (``ruleset.activated``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.ruleset import RulesetInvalid, compile_ruleset
from services.scoring.schemas import RulesetText
from services.scoring.store import KIND
from shared.config import Settings
from shared.cosign import store
from shared.cosign.kind import Activation, Kind, Validated
from shared.events import CloudEvent, RulesetActivated, RulesetActivatedData
from shared.problems import Problem

SOURCE = "/leadflow/scoring"
BOOTSTRAP = "leadflow-dev"


def invalid(error: RulesetInvalid) -> Problem:
    problems = [{"rule": p.rule, "line": p.line, "reason": p.reason} for p in error.problems]
    detail = f"the ruleset is invalid: {error}"
    return Problem(422, "Invalid ruleset", detail, field="content", problems=problems)


async def validate(_session: AsyncSession, text: str) -> Validated:
    try:
        compiled = compile_ruleset(text)
    except RulesetInvalid as error:
        raise invalid(error) from None
    extra = {"conditions": len(compiled.slots)}
    return Validated(compiled.content_hash, name=compiled.spec.name, extra=extra)


def rules_of(text: str) -> dict[str, Any]:
    spec = compile_ruleset(text).spec
    rules = spec.fit.rules + spec.engagement.rules + spec.disqualify + spec.recycle
    found: dict[str, Any] = {r.id: r.model_dump() for r in rules}
    found.update({f"stages.{k}": v for k, v in spec.stages.model_dump().items()})
    found["fit.grades"] = spec.fit.grades
    return found


def activated(going: Activation) -> CloudEvent:
    row, previous = going.row, going.previous
    label = str(row.label)
    data = RulesetActivatedData(
        version=row.version,
        label=label,
        content_hash=row.content_hash,
        previous=previous.label if previous else None,
        activated_by=going.by,
        approvers=dict(going.approvers),
    )
    return RulesetActivated(source=SOURCE, subject=label, time=going.now, data=data, ruleset=label)


QUALIFICATION = Kind(
    name=KIND,
    noun="ruleset",
    body=RulesetText,
    validate=validate,
    rules_of=rules_of,
    activated=activated,
    announces="ruleset.activated",
    labelled=True,
    validate_summary="Check a ruleset without storing it",
)


async def bootstrap(session: AsyncSession, settings: Settings, text: str, *, now: datetime) -> bool:
    """``leadflow dev`` only: make the sample ruleset active when no version is."""
    return await store.bootstrap(session, settings, QUALIFICATION, text, by=BOOTSTRAP, now=now)
