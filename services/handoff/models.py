"""The handoff service's table: the last handoff of each lead (migration 0012_lead_handoffs).

Its key (stage, owner, or the team whose queue the lead waits in) is what the next handoff is
compared with: the same key again is no new handoff. Declared on ``shared.models.Base``.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base, Timestamp


class LeadHandoff(Base):
    __tablename__ = "lead_handoffs"

    lead_id: Mapped[UUID] = mapped_column(primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    owner_id: Mapped[UUID | None] = mapped_column()
    team_id: Mapped[UUID | None] = mapped_column(doc="The queue's team; None when owned")
    event_id: Mapped[UUID] = mapped_column(doc="The lead.qualified that handed it over")
    handed_at: Mapped[datetime] = mapped_column(Timestamp)
