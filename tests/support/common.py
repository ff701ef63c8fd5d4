"""What many tests use: a database under test, settings for one test, polling with a deadline,
a statement run as the server's administrator. (Fixtures: tests/conftest.py.)"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.settings import load_settings
from services.tables import metadata
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.consumer import EventConsumer, Handler
from shared.events import LeadReceived, LeadReceivedData

KEPT_TABLES = {"alembic_version", "outbox_shards"}


async def connect(url: str, *, within_s: float = 10) -> asyncpg.Connection:
    """A plain asyncpg connection to the PostgreSQL database at ``url`` (a SQLAlchemy URL)."""
    parts = make_url(url)
    return await asyncpg.connect(
        host=parts.host,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        database=parts.database,
        timeout=within_s,
    )


async def admin(url: str, statement: str) -> None:
    connection = await connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class Database:
    """A migrated database: the engine, its sessions, and settings that point at it."""

    kind: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def clear(self) -> None:
        async with self.engine.begin() as connection:
            tables = [t for t in reversed(metadata.sorted_tables) if t.name not in KEPT_TABLES]
            if self.kind == "postgresql":
                names = ", ".join(t.name for t in tables)
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
            else:
                for table in tables:
                    await connection.execute(table.delete())


def make_settings(
    database: Database, broker: EmbeddedBroker | None = None, **overrides: object
) -> Settings:
    """Settings for one test: its database, the broker, and topics no other test uses."""
    values: dict[str, object] = {
        "db": {"url": database.url},
        "topics": {"prefix": f"t{uuid4().hex[:10]}"},
        "kafka": {
            "bootstrap_servers": broker.bootstrap_servers if broker else None,
            "idempotence": False,  # the embedded broker has no InitProducerId
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
        },
        "auth": {"secret_keys": ["sk_test"]},
    }
    values.update(overrides)
    return load_settings(**values)


async def eventually(
    check: Callable[[], Any], *, within: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value, or fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(interval)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by ``openssl`` in ``folder``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def lead_received(
    lead_id: UUID | None = None, *, at: datetime | None = None, source: str = "web"
) -> LeadReceived:
    """A ``lead.received`` event for a new lead (a new id unless given), as intake stages it."""
    lead_id = lead_id or uuid4()
    data = LeadReceivedData(lead_id=lead_id, inquiry_id=uuid4(), source=source, new_lead=True)
    return LeadReceived.about_lead(lead_id, data, source="/test", time=at or datetime.now(UTC))


def offline_consumer(
    name: str, handler: Handler, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> EventConsumer:
    """A consumer without a broker, for tests that hand batches to ``process`` or ``_apply``
    (nothing it does there publishes)."""
    return EventConsumer(
        name=name,
        topics=[],
        handler=handler,
        sessions=sessions,
        producer=None,  # type: ignore[arg-type]
        settings=settings,
    )
