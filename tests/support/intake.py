"""Helpers for the intake tests: an app over the test database, keys, counts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from services.api import create_app
from services.intake.keys.store import create_key
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

AUTH = {"Authorization": "Bearer sk_test"}


@asynccontextmanager
async def intake(db: Database, **overrides: Any) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_settings(db, **overrides))
    try:
        yield runtime
    finally:
        await runtime.close()


async def new_key(runtime: Runtime, kind: str = "public", **options: Any) -> str:
    async with runtime.sessions.begin() as session:
        key, _ = await create_key(session, kind=kind, now=datetime.now(UTC), **options)
    return key


@asynccontextmanager
async def client_for(
    runtime: Runtime,
    *,
    app: FastAPI | None = None,
    address: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client from ``address``; pass ``app`` to share one app (its rate limits) between them."""
    transport = httpx.ASGITransport(app=app or create_app(runtime), client=(address, 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://intake", headers=headers or {}
    ) as client:
        yield client


async def count(runtime: Runtime, model: type, *where: Any) -> int:
    async with runtime.sessions() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int(await session.scalar(query) or 0)


async def rows(runtime: Runtime, model: type, *where: Any) -> Sequence[Any]:
    async with runtime.sessions() as session:
        query = select(model)
        for condition in where:
            query = query.where(condition)
        return (await session.scalars(query)).all()
