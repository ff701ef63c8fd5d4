"""Tables. Timestamps are timezone-aware UTC; ids are time-ordered UUIDs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.ids import new_id

OUTBOX_SHARDS = 16
"""Relay work units. One key always maps to one shard and one relay owns a shard at a time,
which keeps a lead's events in order while replicas share the work. Changing it needs a
migration."""

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on SQLite too (which keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Leadflow stores timezone-aware UTC only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = UtcDateTime()
Json = JSON().with_variant(JSONB(), "postgresql")
Sequence = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """The model's ``Table``. SQLAlchemy types ``__table__`` as a ``FromClause``, which
    ``insert()``, ``update()``, ``delete()`` and the helpers in ``shared.db`` do not accept."""
    return cast(Table, model.__table__)


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32), default="inquiry")
    score: Mapped[int | None] = mapped_column(Integer)
    ruleset: Mapped[str | None] = mapped_column(String(64))
    scored_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # Platforms and outcomes (migration 0005_platforms): test leads stay out of funnel, SLA and
    # routing counts; a CRM's own id for the lead, from the outcomes it posts.
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())
    crm_id: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    # Qualification (migration 0003_rules): ``score`` above is the fit score.
    fit_grade: Mapped[str | None] = mapped_column(String(8))
    engagement_score: Mapped[int | None] = mapped_column(Integer)
    stage_reason: Mapped[str | None] = mapped_column(String(64))
    stage_changed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    mql_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sal_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sql_at: Mapped[datetime | None] = mapped_column(Timestamp)
    opportunity_at: Mapped[datetime | None] = mapped_column(Timestamp)
    won_at: Mapped[datetime | None] = mapped_column(Timestamp)
    lost_at: Mapped[datetime | None] = mapped_column(Timestamp)
    recycled_at: Mapped[datetime | None] = mapped_column(Timestamp)
    disqualified_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Routing (migration 0006_routing): the owner, or the team whose queue the lead waits in.
    owner_id: Mapped[UUID | None] = mapped_column(index=True)
    owner_team_id: Mapped[UUID | None] = mapped_column()
    routing_status: Mapped[str | None] = mapped_column(String(16), index=True)
    routed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    is_expansion: Mapped[bool | None] = mapped_column()
    account_id: Mapped[UUID | None] = mapped_column()
    # Intake (migration 0002_intake): normalised facts, phone-only dedupe key, spam, erasure.
    country: Mapped[str | None] = mapped_column(String(2))
    company_domain: Mapped[str | None] = mapped_column(String(253))
    phone_key: Mapped[str | None] = mapped_column(String(32), unique=True, index=True)
    quarantined: Mapped[bool] = mapped_column(default=False, server_default=false())
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Inquiry(Base):
    __tablename__ = "inquiries"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"), index=True)
    source: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    submission: Mapped[dict[str, Any]] = mapped_column(Json)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Intake (migration 0002_intake): the body as posted (``submission`` is it normalised), and
    # why it was held back from routing (``honeypot``), if it was.
    raw: Mapped[dict[str, Any] | None] = mapped_column(Json)
    quarantine_reason: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(  # raw bodies still kept, by arrival: see migration 0016 (retention)
            "ix_inquiries_raw_received_at",
            "received_at",
            postgresql_where=text("raw IS NOT NULL"),
            sqlite_where=text("raw IS NOT NULL"),
        ),
    )


class LeadHistory(Base):
    """The lead's timeline, in the words of the events that changed it."""

    __tablename__ = "lead_history"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    kind: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[UUID | None] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(Json)

    __table_args__ = (Index("ix_lead_history_occurred_at", "occurred_at"),)  # retention


class OutboxMessage(Base):
    """Events waiting for the relay, in the column names Debezium's outbox uses."""

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(Sequence, primary_key=True, autoincrement=True)
    id: Mapped[UUID] = mapped_column(unique=True)
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(100))
    shard: Mapped[int] = mapped_column(SmallInteger)
    topic: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "shard",
            "seq",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index(  # published rows only: see migration 0008
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
            sqlite_where=text("published_at IS NOT NULL"),
        ),
    )


class OutboxShard(Base):
    """One row per shard, locked by the relay that is publishing that shard."""

    __tablename__ = "outbox_shards"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)


class ProcessedEvent(Base):
    """What each consumer has applied, written in the same transaction as the effects."""

    __tablename__ = "processed_events"
    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)  # retention

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(Timestamp)
