"""The SLA monitor's tables: one row per clock, open or closed, and the responses that came
before any clock could count them (migration 0011_sla_clocks).

An open clock with tiers still to come has ``next_due_at``; the sweep reads only the rows whose
``next_due_at`` has passed, through an index on it that holds only those rows (a partial index),
so its cost follows the due clocks, not the open ones. Closed clocks stay, as the lead's history
(each owner's clock of a reassigned lead among them). Declared on ``shared.models.Base``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Float, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Timestamp

OPEN, MET, CANCELLED = "open", "met", "cancelled"


class SlaClock(Base):
    __tablename__ = "sla_clocks"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(12), default=OPEN)
    policy: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[UUID | None] = mapped_column(index=True)
    owner_email: Mapped[str | None] = mapped_column(String(320))
    team: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(64))
    calendar: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    target_s: Mapped[float] = mapped_column(Float)
    deadline: Mapped[datetime] = mapped_column(Timestamp)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    responses: Mapped[list[str]] = mapped_column(Json)
    next_tier: Mapped[int] = mapped_column(Integer, default=1)
    next_due_at: Mapped[datetime | None] = mapped_column(Timestamp)
    system_time_s: Mapped[float | None] = mapped_column(Float)
    breached_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[str | None] = mapped_column(String(64))
    working_time_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    traceparent: Mapped[str | None] = mapped_column(String(64))
    """The trace its tiers join when the sweep fires them (the span of the event that started
    it), tracing on."""

    __table_args__ = (
        Index(
            "ix_sla_clocks_due",
            "next_due_at",
            postgresql_where=text("next_due_at IS NOT NULL"),
            sqlite_where=text("next_due_at IS NOT NULL"),
        ),
        Index(
            "uq_sla_clocks_open",
            "lead_id",
            "kind",
            unique=True,
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        Index("ix_sla_clocks_closed", "closed_at"),
        Index("ix_sla_clocks_updated", "updated_at", "id"),
    )


class SlaTouch(Base):
    """A response that no open clock counted when it was applied: a lead's ``lead.outcome`` and
    ``lead.routed`` travel on different topics, so the rep's answer may be applied first. A clock
    that opens later for the lead is met by a touch that came after the lead was routed.
    Kept ``TOUCH_DAYS`` (the sweep deletes older ones)."""

    __tablename__ = "sla_touches"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(index=True)
    response: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


TOUCH_DAYS = 7
