"""The SLA monitor's HTTP bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.cosign.kind import MAX_CONTENT, Proposal
from shared.events import ClockKind


class SlaPoliciesIn(Proposal):
    content: str = Field(min_length=1, max_length=MAX_CONTENT, description="The SLA policies YAML")


Standing = Literal["on_track", "warned", "breached", "acknowledged"]


class TierView(BaseModel):
    index: int
    at: str = Field(description="The offset as written: 50%, 100% + 30m")
    step: Literal["warning", "breach", "escalate"]
    due: datetime
    notify: list[str]
    reassign: bool
    fired: bool = Field(description="Its event went out (sla.warning, sla.breached, sla.escalated)")
    passed_over: str | None = Field(
        None,
        description="Settled without an event, and why: acknowledged (a notify tier after an "
        "acknowledgement), met or cancelled (a warning that fell due before the clock closed, "
        "not yet fired then). A tier neither fired nor passed over has not fallen due while "
        "the clock was open",
    )


class ClockView(BaseModel):
    id: UUID
    lead_id: UUID
    kind: ClockKind
    state: Literal["open", "met", "cancelled"]
    standing: Literal["on_track", "warned", "breached", "met", "cancelled"] = Field(
        description="An open clock: no tier fired yet, warned, or past its deadline"
    )
    policy: str
    policy_version: int | None
    owner_id: UUID | None
    owner_email: str | None
    team: str | None
    source: str | None
    calendar: str
    started_at: datetime
    target_s: float
    deadline: datetime
    time_left_s: float | None = Field(description="Seconds to the deadline (negative: overdue)")
    next_due_at: datetime | None
    system_time_s: float | None
    breached_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_reason: str | None
    response: str | None
    working_time_s: float | None
    tiers: list[TierView]


class AcknowledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=500, description="What is being done about it")


class AttainmentView(BaseModel):
    group: str
    clocks: int = Field(description="Clocks decided in the period: met, or breached")
    met_in_time: int
    attainment_pct: float
    owner_p50_s: float | None = Field(description="Owner working time to response, median")
    owner_p90_s: float | None
    system_p50_s: float | None = Field(description="Received → routed (Leadflow's own delay)")
    system_p90_s: float | None
