"""Scoring's tables: ruleset versions and their approvals, activities, stage transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Timestamp

ACTIVE = text("status = 'active'")


class Ruleset(Base):
    """One immutable version of a ruleset file; only its status and activation change."""

    __tablename__ = "rulesets"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # proposed | active | retired
    note: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[datetime] = mapped_column(Timestamp)
    activated_by: Mapped[str | None] = mapped_column(String(100))
    activated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        # At most one active version, whatever two operators do at once.
        Index(
            "uq_rulesets_active",
            "status",
            unique=True,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        ),
    )


class RulesetApproval(Base):
    """One side's signature on one version's exact content."""

    __tablename__ = "ruleset_approvals"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    ruleset_id: Mapped[UUID] = mapped_column(ForeignKey("rulesets.id"), index=True)
    side: Mapped[str] = mapped_column(String(16))  # marketing | sales
    approver: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("ruleset_id", "side", name="uq_ruleset_approvals_side"),)


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
