"""The webhook tables: subscriptions, one message per (subscription, event), every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any
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
WEBHOOK = "webhook"
HUBSPOT = "hubspot"
SALESFORCE = "salesforce"
CRM_KINDS = frozenset({HUBSPOT, SALESFORCE})


class Subscription(Base):
    """A CRM endpoint and the events it wants. ``secret`` signs; ``previous_secret`` too, until
    ``previous_secret_until`` (rotation). The health columns drive the circuit breaker.
    ``format``: the body sent, ``cloudevents`` (the event) or ``slack`` (a chat message,
    ``chat``), rendered as each message is recorded. ``kind``: a plain signed ``webhook``, or a
    CRM (``hubspot``, ``salesforce``) whose messages the CRM sync sends in batches through the
    CRM's own API (``crm`` its settings, ``credentials`` its token or client secret, never
    shown). ``consent_flags``: the consent that lets the lead's personal fields through (None:
    the setting's default)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[str]] = mapped_column(Json)
    filter: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    format: Mapped[str] = mapped_column(String(16), default=CLOUDEVENTS, server_default=CLOUDEVENTS)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=WEBHOOK, server_default=WEBHOOK)
    consent_flags: Mapped[list[str] | None] = mapped_column(Json)
    crm: Mapped[dict[str, Any] | None] = mapped_column(Json)
    credentials: Mapped[dict[str, str] | None] = mapped_column(Json)
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
    traceparent: Mapped[str | None] = mapped_column(String(64))
    """The trace its attempts join (the webhooks consumer's span of the event), tracing on."""

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
        Index(  # retention: see migration 0016
            "ix_webhook_messages_delivered_at",
            "delivered_at",
            postgresql_where=text("status = 'delivered'"),
            sqlite_where=text("status = 'delivered'"),
        ),
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
        Index("ix_webhook_attempts_attempted_at", "attempted_at"),  # retention
    )


class CrmLink(Base):
    """The CRM's id for a lead it received through a subscription: its webhooks name the
    record, not the lead."""

    __tablename__ = "crm_links"

    subscription_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    lead_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_crm_links_record", "subscription_id", "record_id"),)
