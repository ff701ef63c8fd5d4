"""Events of the SLA clocks (services/sla_monitor), on the SLA topic.

A clock is one target of one lead: ``pickup`` (a queued lead waiting for someone to take it),
``first_response`` (routed → the owner's first touch), ``acceptance`` (an MQL accepted or
rejected) or ``follow_up`` (the next touch after the first). Each clock is ``sla.started``, then
its ladder's tiers fire as they fall due (``sla.warning`` before the deadline, ``sla.breached``
at it, ``sla.escalated`` after, each once), and it ends ``sla.met`` or ``sla.cancelled``.
Routing consumes ``sla.escalated`` with ``reassign`` (services/routing/handlers.py) and moves the
lead to someone else; the notifier emails whoever ``notify`` names.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register

ClockKind = Literal["pickup", "first_response", "acceptance", "follow_up"]
CLOCK_KINDS: tuple[ClockKind, ...] = ("pickup", "first_response", "acceptance", "follow_up")


class _Clock(Payload):
    lead_id: UUID
    clock_id: UUID | None = Field(None, description="The clock (GET /v1/sla/clocks/{id})")
    clock: ClockKind | None = Field(None, description="Which target the clock measures")
    policy: str = Field(min_length=1, max_length=100, description="The SLA policy that applies")
    policy_version: int | None = Field(None, description="The SLA policies version; None: none")
    owner_id: UUID | None = Field(
        None, description="The owner on the clock; None: the lead waits in a queue"
    )
    owner_email: str | None = None
    team: str | None = None
    deadline: datetime | None = Field(None, description="When the owner had to act by")


class _Tier(_Clock):
    tier: int = Field(0, ge=0, description="The ladder's tier (0: the start, 1…: its steps)")
    at: str = Field("", max_length=50, description="The tier's offset as written: 50%, 100% + 30m")
    due_at: datetime | None = Field(None, description="When the tier fell due")
    late_by_s: float = Field(0.0, ge=0, description="How long after its due time it fired")
    late: bool = Field(False, description="Fired late: the monitor was down or behind")
    notify: list[str] = Field(
        default_factory=list, description="Who is told (email addresses); the notifier sends"
    )


class SlaStartedData(_Tier):
    started_at: datetime = Field(description="When the clock starts counting (working time)")
    target_s: float = Field(ge=0, description="The target in working seconds")
    calendar: str = Field(description="The business calendar the deadline counts in")
    system_time_s: float | None = Field(
        None, description="Leadflow's own delay before the owner's clock: received → routed"
    )


class SlaWarningData(_Tier):
    pass


class SlaBreachedData(_Tier):
    pass


class SlaEscalatedData(_Tier):
    owner_id: UUID | None = Field(
        None,
        description="The owner whose deadline passed; routing acts only if the lead still has "
        "this owner (a stale escalation changes nothing). None: whoever owns it now",
    )
    reason: str = Field(
        "breached", min_length=1, max_length=200, description="Why, in a word or a few"
    )
    action: Literal["notify", "reassign"] = Field("reassign", description="What the tier does")
    reassign: bool = Field(
        True, description="Move the lead to another owner; false: notify the manager only"
    )


class SlaAcknowledgedData(_Clock):
    by: str = Field(description="Who acknowledged: the ladder's notify tiers stop, not the clock")
    note: str = Field("", max_length=500)


class SlaMetData(_Clock):
    responded_at: datetime
    response: str = Field(description="What counted: an outcome or an activity kind")
    working_time_s: float = Field(description="Working time from start to response")
    elapsed_s: float = Field(description="Calendar time from start to response")
    breached: bool = Field(description="The response came after the deadline")


class SlaCancelledData(_Clock):
    reason: str = Field(
        description="Why the clock stopped uncounted: reassigned, disqualified, erased, won…"
    )


@register
class SlaStarted(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.started"] = "sla.started"
    data: SlaStartedData


@register
class SlaWarning(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.warning"] = "sla.warning"
    data: SlaWarningData


@register
class SlaBreached(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.breached"] = "sla.breached"
    data: SlaBreachedData


@register
class SlaEscalated(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.escalated"] = "sla.escalated"
    data: SlaEscalatedData


@register
class SlaAcknowledged(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.acknowledged"] = "sla.acknowledged"
    data: SlaAcknowledgedData


@register
class SlaMet(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.met"] = "sla.met"
    data: SlaMetData


@register
class SlaCancelled(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla.cancelled"] = "sla.cancelled"
    data: SlaCancelledData


class SlaPoliciesActivatedData(Payload):
    version: int = Field(description="The SLA policies version now live (as clocks carry it)")
    content_hash: str = Field(description="SHA-256 of the policies file, as both sides signed it")
    previous: int | None = Field(None, description="The version it replaces")
    activated_by: str
    approvers: dict[str, str] = Field(description="Side (marketing, sales) → who approved")


@register
class SlaPoliciesActivated(CloudEvent):
    stream: ClassVar[Stream] = "sla"
    type: Literal["sla_policies.activated"] = "sla_policies.activated"
    data: SlaPoliciesActivatedData
