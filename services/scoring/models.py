"""Scoring's tables: activities, stage transitions (ruleset versions: shared/cosign)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Timestamp


class ScoringActivity(Base):
    """Engagement as scoring saw it (each inquiry counts as ``form_submit``): its own read model."""

    __tablename__ = "scoring_activities"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"))
    kind: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    event_id: Mapped[UUID] = mapped_column(unique=True)

    __table_args__ = (Index("ix_scoring_activities_lead", "lead_id", "occurred_at"),)


class LeadTransition(Base):
    """Each stage change: when, from what to what, why, and under which ruleset version."""

    __tablename__ = "lead_transitions"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    from_stage: Mapped[str] = mapped_column(String(32))
    to_stage: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(16))  # rules | outcome
    rules: Mapped[list[Any]] = mapped_column(Json)
    reason: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    ruleset: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[UUID | None] = mapped_column()

    __table_args__ = (Index("ix_lead_transitions_lead", "lead_id", "occurred_at"),)
