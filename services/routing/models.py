"""Routing tables: the owner directory, customer accounts, the fairness ledger and every
assignment with its reasons (routing rules versions: shared/cosign). Declared on
``shared.models.Base``."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.ids import new_id
from shared.models import Base, Json, Timestamp


class Team(Base):
    """A team or queue: a pool of reps with a strategy for picking among them."""

    __tablename__ = "routing_teams"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="team")
    strategy: Mapped[str] = mapped_column(String(32), default="round_robin")
    outside_hours: Mapped[str] = mapped_column(String(8), default="skip")
    manager_id: Mapped[UUID | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Rep(Base):
    __tablename__ = "routing_reps"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    manager_id: Mapped[UUID | None] = mapped_column()
    roles: Mapped[list[str]] = mapped_column(Json, default=list)
    territories: Mapped[list[str]] = mapped_column(Json, default=list)
    segments: Mapped[list[str]] = mapped_column(Json, default=list)
    languages: Mapped[list[str]] = mapped_column(Json, default=list)
    products: Mapped[list[str]] = mapped_column(Json, default=list)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    max_open: Mapped[int | None] = mapped_column(Integer)
    max_per_day: Mapped[int | None] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    working_hours: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")
    away_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # Load, kept by routing under this row's lock (see txn.py); `leadflow owners recount`
    # rebuilds open_leads from the leads table.
    open_leads: Mapped[int] = mapped_column(Integer, default=0)
    assigned_day: Mapped[str | None] = mapped_column(String(10))
    assigned_today: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Membership(Base):
    __tablename__ = "routing_memberships"

    team_id: Mapped[UUID] = mapped_column(ForeignKey("routing_teams.id"), primary_key=True)
    rep_id: Mapped[UUID] = mapped_column(ForeignKey("routing_reps.id"), primary_key=True)


class Account(Base):
    """An existing customer: its leads are expansion and go to its owner."""

    __tablename__ = "routing_accounts"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    owner_id: Mapped[UUID | None] = mapped_column(ForeignKey("routing_reps.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class RoutingState(Base):
    """One row (id 1), naming the directory's current version so processes know when their
    cached copy is stale. Read by routers, not locked (they lock pools and reps: txn.py)."""

    __tablename__ = "routing_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    directory_token: Mapped[str] = mapped_column(String(36))


class PoolState(Base):
    """A pool's fairness window: the roster it was opened for and how many leads it has seen.
    Every team has one (made with the team): the row a router locks while it routes in the
    pool (txn.py)."""

    __tablename__ = "routing_pools"

    team_id: Mapped[UUID] = mapped_column(primary_key=True)
    roster: Mapped[list[list[Any]]] = mapped_column(Json, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    routed: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class LedgerEntry(Base):
    """A rep's standing in a pool: share credited up to the window's start, leads assigned."""

    __tablename__ = "routing_ledger"

    team_id: Mapped[UUID] = mapped_column(primary_key=True)
    rep_id: Mapped[UUID] = mapped_column(primary_key=True)
    credited: Mapped[float] = mapped_column(Float, default=0.0)
    assigned: Mapped[int] = mapped_column(Integer, default=0)
    window_count: Mapped[int] = mapped_column(Integer, default=0)


class Assignment(Base):
    """Every routing decision: who, by which rule, who else was considered and why not."""

    __tablename__ = "routing_assignments"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=new_id)
    lead_id: Mapped[UUID] = mapped_column(ForeignKey("leads.id"), index=True)
    decided_at: Mapped[datetime] = mapped_column(Timestamp)
    trigger: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[UUID | None] = mapped_column()
    team_id: Mapped[UUID | None] = mapped_column()
    previous_owner_id: Mapped[UUID | None] = mapped_column()
    rule: Mapped[str] = mapped_column(String(100))
    ruleset_version: Mapped[int | None] = mapped_column(Integer)
    strategy: Mapped[str | None] = mapped_column(String(32))
    is_expansion: Mapped[bool] = mapped_column(Boolean, default=False)
    account_id: Mapped[UUID | None] = mapped_column()
    reason: Mapped[str] = mapped_column(String(500))
    available_at: Mapped[datetime | None] = mapped_column(Timestamp)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
