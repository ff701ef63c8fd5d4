"""The analytics service's tables (migration 0014_analytics), declared on ``shared.models.Base``:

- ``analytics_facts``: what the consumer kept of each event it applied, once per event (the
  event id is the key). The funnel lines are folded from these, and rebuilt from them when a
  definition changes (projection.py).
- ``analytics_leads``: one line per lead, the funnel's unit: its cohort, dimensions and the first
  time it reached each stage. Reports aggregate these (store.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base, Json, Timestamp


class AnalyticsFact(Base):
    __tablename__ = "analytics_facts"

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    lead_id: Mapped[UUID] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(Json)


class AnalyticsLead(Base):
    __tablename__ = "analytics_leads"
    __table_args__ = (Index("ix_analytics_leads_cohort", "is_test", "cohort_day"),)

    lead_id: Mapped[UUID] = mapped_column(primary_key=True)
    cohort_at: Mapped[datetime] = mapped_column(Timestamp)
    cohort_day: Mapped[str] = mapped_column(String(10), doc="YYYY-MM-DD, reporting time zone")
    cohort_month: Mapped[str] = mapped_column(String(7), doc="YYYY-MM")
    source: Mapped[str] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(200))
    medium: Mapped[str | None] = mapped_column(String(200))
    ad_platform: Mapped[str | None] = mapped_column(String(16))
    segment: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[UUID | None] = mapped_column()
    owner_email: Mapped[str | None] = mapped_column(String(320), doc="The rep's, not the lead's")
    is_expansion: Mapped[bool | None] = mapped_column()
    routed_at: Mapped[datetime | None] = mapped_column(Timestamp, doc="Of the routing shown")
    ruleset: Mapped[str | None] = mapped_column(String(64))
    is_test: Mapped[bool] = mapped_column()
    mql_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sql_at: Mapped[datetime | None] = mapped_column(Timestamp)
    opportunity_at: Mapped[datetime | None] = mapped_column(Timestamp)
    booked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lost_at: Mapped[datetime | None] = mapped_column(Timestamp)
    dropped_at: Mapped[datetime | None] = mapped_column(Timestamp, doc="Recycled, disqualified")
    opportunity_amount: Mapped[float | None] = mapped_column(Float)
    opportunity_amount_at: Mapped[datetime | None] = mapped_column(Timestamp)
    booking_amount: Mapped[float | None] = mapped_column(Float)
    booking_amount_at: Mapped[datetime | None] = mapped_column(Timestamp)
    currency: Mapped[str | None] = mapped_column(String(3))
    sourced_by: Mapped[str | None] = mapped_column(String(16), doc="marketing or sales")
