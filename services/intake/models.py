"""Intake's own tables: API keys (hashed) and the first answer to each Idempotency-Key."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import SmallInteger, String
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
