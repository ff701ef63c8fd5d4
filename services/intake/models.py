"""Intake's tables: API keys (hashed), the first answer to each Idempotency-Key, and the ad
platforms' and engagement's (migration 0005_platforms).

``platform_leads`` records each platform lead id once, with the answer it got, so a platform's
retry is answered the same and never makes a second inquiry. ``platform_fetches`` is the durable
queue of Meta leads whose fields are still to be fetched from the Graph API: a row stays until
the fetch succeeds, however long that takes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, SmallInteger, String, false
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Timestamp


class ApiKey(Base):
    """A key is shown once, when it is made; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(10))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to tell keys apart
    name: Mapped[str] = mapped_column(String(200), default="")
    allowed_origins: Mapped[list[str]] = mapped_column(Json, default=list)
    thank_you_url: Mapped[str | None] = mapped_column(String(2000))
    # A JSON lead's unknown fields: refused (422) with a strict key, else kept in ``custom``.
    strict: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)


class IdempotencyRecord(Base):
    """The first answer to a request with an ``Idempotency-Key``; a retry gets it back.

    ``key`` is scoped by the API key that sent it (``<api key id>:<header>``) so two clients'
    keys never meet. ``fingerprint`` is the SHA-256 of the normalised submission: the same key
    with a different submission is refused."""

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(SmallInteger)
    body: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Timestamp, index=True)


class PlatformLead(Base):
    __tablename__ = "platform_leads"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    platform_lead_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    form_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), doc="pending | stored | invalid")
    is_test: Mapped[bool] = mapped_column(default=False, server_default=false())
    lead_id: Mapped[UUID | None] = mapped_column(index=True)
    inquiry_id: Mapped[UUID | None] = mapped_column()
    new_lead: Mapped[bool | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    stored_at: Mapped[datetime | None] = mapped_column(Timestamp)
    detail: Mapped[dict[str, Any]] = mapped_column(Json, doc="Platform ids (campaign, ad, page…)")


class PlatformFetch(Base):
    __tablename__ = "platform_fetches"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    platform: Mapped[str] = mapped_column(String(16))
    platform_lead_id: Mapped[str] = mapped_column(String(200))
    form_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    claim: Mapped[UUID | None] = mapped_column(doc="The sweep that holds the lease")
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (
        Index("uq_platform_fetches_lead", "platform", "platform_lead_id", unique=True),
    )


class LeadActivityRow(Base):
    """Engagement reported by a website, a marketing tool or a CRM."""

    __tablename__ = "lead_activities"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    properties: Mapped[dict[str, Any]] = mapped_column(Json)
    event_id: Mapped[UUID] = mapped_column()


class LeadOutcomeRow(Base):
    """What sales did with a lead, as its CRM reported it."""

    __tablename__ = "lead_outcomes"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(Timestamp)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    reason: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2, asdecimal=True))
    currency: Mapped[str | None] = mapped_column(String(3))
    crm: Mapped[str | None] = mapped_column(String(64))
    crm_id: Mapped[str | None] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(Json)
    event_id: Mapped[UUID] = mapped_column()

    __table_args__ = (Index("ix_lead_outcomes_lead_outcome", "lead_id", "outcome"),)
