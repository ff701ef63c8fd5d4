"""The webhook tables: subscriptions, one message per (subscription, event), every attempt."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Sequence, Timestamp

PENDING = "pending"
DELIVERED = "delivered"
EXHAUSTED = "exhausted"
CLOUDEVENTS = "cloudevents"
SLACK = "slack"


class Subscription(Base):
    """A CRM endpoint and the events it wants. ``secret`` signs; ``previous_secret`` too, until
    ``previous_secret_until`` (rotation). The health columns drive the circuit breaker.
    ``format``: the body sent, ``cloudevents`` (the event) or ``slack`` (a chat message,
    ``chat``), rendered as each message is recorded."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(Json)
    filter: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    format: Mapped[str] = mapped_column(String(16), default=CLOUDEVENTS, server_default=CLOUDEVENTS)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(Timestamp)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp)
    paused_until: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WebhookMessage(Base):
    """One event to deliver to one subscription: its body as sent, where its schedule stands.

    ``seq`` orders one lead's messages to one endpoint; a message is sent only when no earlier
    pending message of the same lead waits for that endpoint. ``locked_until`` is the lease of the
    dispatcher sending it (claimed with ``SKIP LOCKED`` on PostgreSQL).
    """

    __tablename__ = "webhook_messages"

    seq: Mapped[int] = mapped_column(Sequence, primary_key=True, autoincrement=True)
    id: Mapped[UUID] = mapped_column(unique=True, default=new_id)
    subscription_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(Timestamp)
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        Index("uq_webhook_messages_subscription_event", "subscription_id", "event_id", unique=True),
        Index(
            "ix_webhook_messages_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_messages_lead_queue",
            "subscription_id",
            "lead_id",
            "seq",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_messages_subscription_created", "subscription_id", "created_at"),
    )


class DeliveryAttempt(Base):
    """The delivery log: one row per HTTP attempt (or refusal to attempt)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    message_seq: Mapped[int] = mapped_column(
        ForeignKey("webhook_messages.seq", ondelete="CASCADE"), index=True
    )
    subscription_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    lead_id: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    attempted_at: Mapped[datetime] = mapped_column(Timestamp)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500))
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_webhook_attempts_subscription_time", "subscription_id", "attempted_at"),
    )
