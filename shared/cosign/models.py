"""The versions of every kind of co-signed configuration, and their approvals."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Timestamp

ACTIVE = text("status = 'active'")


class CosignedVersion(Base):
    """One immutable version of a kind's text; only its status and activation change."""

    __tablename__ = "cosigned_versions"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    """1, 2, … within its kind."""
    label: Mapped[str | None] = mapped_column(String(64))
    """What leads and events name the version by, for the kinds that label theirs."""
    name: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # proposed | active | retired
    note: Mapped[str] = mapped_column(Text, default="")
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[datetime] = mapped_column(Timestamp)
    activated_by: Mapped[str | None] = mapped_column(String(200))
    activated_at: Mapped[datetime | None] = mapped_column(Timestamp)
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("kind", "version", name="uq_cosigned_versions_version"),
        UniqueConstraint("kind", "label", name="uq_cosigned_versions_label"),
        UniqueConstraint("kind", "content_hash", name="uq_cosigned_versions_content"),
        # At most one active version of a kind, whatever two operators do at once.
        Index(
            "uq_cosigned_versions_active",
            "kind",
            unique=True,
            postgresql_where=ACTIVE,
            sqlite_where=ACTIVE,
        ),
    )


class CosignedApproval(Base):
    """One side's signature on one version's exact content."""

    __tablename__ = "cosigned_approvals"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    version_id: Mapped[UUID] = mapped_column(ForeignKey("cosigned_versions.id"), index=True)
    side: Mapped[str] = mapped_column(String(16))  # marketing | sales
    approver: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (UniqueConstraint("version_id", "side", name="uq_cosigned_approvals_side"),)
