"""Builders for SLA monitor tests: live policies, lifecycle events, the events a clock staged."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.versions import SLA
from shared.config import Settings
from shared.cosign import store as cosigned
from shared.events import (
    CloudEvent,
    LeadActivity,
    LeadActivityData,
    LeadOutcome,
    LeadOutcomeData,
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadRouted,
    LeadRoutedData,
    decode,
)
from shared.models import OutboxMessage

POLICIES = """
name: Test SLAs
contacts:
  manager: [manager@example.com]
  head_of_sales: [cro@example.com]
policies:
  - id: hot
    when: 'lead.source == "web"'
    pickup:
      within: 10m
      ladder: [{at: 100%, notify: [manager]}]
    first_response:
      within: 1h
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 30m, reassign: true}
        - {at: 100% + 2h, notify: [head_of_sales]}
    acceptance: {within: 4h}
    follow_up: {within: 24h}
"""
SOURCE = "/tests"


async def activate(
    session: AsyncSession, settings: Settings, now: datetime | None = None, text: str = POLICIES
) -> bool:
    """Make ``text`` the live SLA policies (unsigned, as ``leadflow dev``'s sample)."""
    when = now or datetime.now(UTC)
    return await cosigned.bootstrap(session, settings, SLA, text, by="tests", now=when)


def routed(
    lead_id: UUID, owner_id: UUID, at: datetime, *, email: str = "ana@example.com", **extra: Any
) -> LeadRouted:
    data = LeadRoutedData(
        lead_id=lead_id, trigger="qualified", rule="default_queue", team="inbound",
        is_expansion=False, reason="round robin", owner_id=owner_id, owner_email=email, **extra,
    )  # fmt: skip
    return LeadRouted.about_lead(lead_id, data, source=SOURCE, time=at)


def queued(lead_id: UUID, at: datetime) -> LeadQueued:
    data = LeadQueuedData(
        lead_id=lead_id, trigger="qualified", rule="default_queue", team="inbound",
        is_expansion=False, reason="nobody available",
    )  # fmt: skip
    return LeadQueued.about_lead(lead_id, data, source=SOURCE, time=at)


def reassigned(
    lead_id: UUID, old: UUID | None, new: UUID | None, at: datetime, email: str | None
) -> LeadReassigned:
    data = LeadReassignedData(
        lead_id=lead_id, trigger="sla_escalation", rule="default_queue", team="inbound",
        is_expansion=False, reason="round robin", previous_owner_id=old, owner_id=new,
        owner_email=email, why="SLA escalation",
    )  # fmt: skip
    return LeadReassigned.about_lead(lead_id, data, source=SOURCE, time=at)


def outcome(lead_id: UUID, kind: str, at: datetime, **extra: Any) -> LeadOutcome:
    data = LeadOutcomeData(lead_id=lead_id, outcome=kind, occurred_at=at, **extra)  # type: ignore[arg-type]
    return LeadOutcome.about_lead(lead_id, data, source=SOURCE, time=at)


def activity(lead_id: UUID, kind: str, at: datetime, **detail: Any) -> LeadActivity:
    data = LeadActivityData(lead_id=lead_id, kind=kind, occurred_at=at, detail=detail)
    return LeadActivity.about_lead(lead_id, data, source=SOURCE, time=at)


async def staged(
    session: AsyncSession, *, lead_id: UUID | None = None, prefix: str = "sla."
) -> list[CloudEvent]:
    """The events staged in the outbox (oldest first), of types starting with ``prefix``."""
    query = select(OutboxMessage.payload).order_by(OutboxMessage.seq)
    query = query.where(OutboxMessage.type.startswith(prefix))
    if lead_id is not None:
        query = query.where(OutboxMessage.aggregate_id == str(lead_id))
    return [decode(p.encode()) for p in await session.scalars(query)]


def types(events: Sequence[CloudEvent]) -> list[str]:
    return [e.type for e in events]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
