"""Events of qualification: a lead scored into a stage, and a ruleset version going live.

Every one carries the ``ruleset`` extension: the version label that decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register


class StageChangedData(Payload):
    lead_id: UUID
    from_stage: str
    to_stage: str
    cause: Literal["rules", "outcome"] = Field(description="Rules fired, or a CRM outcome")
    rules: list[str] = Field(default_factory=list, description="Ids of the rules that decided")
    reason: str | None = Field(None, description="Reason code (recycle, disqualify, rejection)")
    outcome: str | None = Field(None, description="The CRM outcome, when that was the cause")
    fit_score: int | None = None
    fit_grade: str | None = None
    engagement_score: int | None = None
    caused_at: datetime | None = Field(
        None,
        description="When what caused the change happened: the CRM outcome's or the activity's "
        "time, or the inquiry's arrival (the event's `time` is when Leadflow applied it)",
    )


class RulesetActivatedData(Payload):
    version: int
    label: str = Field(description="The version label carried by score and stage events")
    content_hash: str = Field(description="SHA-256 of the ruleset file, as both sides signed it")
    previous: str | None = Field(None, description="The label of the version it replaces")
    activated_by: str
    approvers: dict[str, str] = Field(description="Side (marketing, sales) → who approved")


class _StageEvent(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    data: StageChangedData


@register
class LeadMql(_StageEvent):
    type: Literal["lead.mql"] = "lead.mql"


@register
class LeadSql(_StageEvent):
    type: Literal["lead.sql"] = "lead.sql"


@register
class LeadRecycled(_StageEvent):
    type: Literal["lead.recycled"] = "lead.recycled"


@register
class LeadDisqualified(_StageEvent):
    type: Literal["lead.disqualified"] = "lead.disqualified"


@register
class RulesetActivated(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["ruleset.activated"] = "ruleset.activated"
    data: RulesetActivatedData


LIFECYCLE_STAGES: tuple[str, ...] = (
    "inquiry", "mql", "sal", "sql", "opportunity", "won", "lost", "recycled", "disqualified",
)  # fmt: skip
"""Every stage a lead can be in, as stage events name them (scoring moves leads among them:
services/scoring/lifecycle.py)."""

STAGE_EVENTS: dict[str, type[_StageEvent]] = {
    "mql": LeadMql,
    "sql": LeadSql,
    "recycled": LeadRecycled,
    "disqualified": LeadDisqualified,
}
"""The stages reaching which is an event of its own."""
