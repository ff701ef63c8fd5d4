"""Events of the goals marketing and sales co-sign (services/analytics/goals.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.events.envelope import CloudEvent, Payload, Stream, register


class GoalsActivatedData(Payload):
    version: int = Field(description="The goals version now live")
    name: str = Field(description="The name the goals give themselves")
    start: str = Field(description="The first of their twelve months, YYYY-MM")
    content_hash: str = Field(description="SHA-256 of the goals file, as both sides signed it")
    previous: int | None = Field(None, description="The version it replaces")
    activated_by: str
    approvers: dict[str, str] = Field(description="Side (marketing, sales) → who approved")


@register
class GoalsActivated(CloudEvent):
    stream: ClassVar[Stream] = "lifecycle"
    type: Literal["goals.activated"] = "goals.activated"
    data: GoalsActivatedData
