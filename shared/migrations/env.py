"""Alembic environment: ``shared.migrate`` hands in a live connection; the alembic CLI a URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import get_settings

# Every service's tables (services/tables.py) when the caller hands them in, for comparing the
# models with the migrations; applying migrations needs none.
target_metadata = context.config.attributes.get("target_metadata")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(
        _run_with_url(context.config.get_main_option("sqlalchemy.url") or get_settings().db.url)
    )
