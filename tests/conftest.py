"""Shared fixtures: a real PostgreSQL and SQLite (schema built by the migrations), a real broker.

PostgreSQL: ``TEST_POSTGRES_URL`` (default the local server, database ``test``). Each run makes
its own database, so runs on one server do not collide. If the server is down, the fixture tries
to start it; under ``CI=true`` a server that cannot be reached fails the run instead of skipping.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from services.settings import load_settings
from shared.broker import EmbeddedBroker
from shared.db import make_engine, make_sessions
from shared.migrate import upgrade
from tests.support.common import Database, admin, connect
from tests.support.postgres_server import PostgresServer, PostgresUnavailable
from tests.support.redis_server import RedisServer, RedisUnavailable

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _start_local_postgres() -> None:
    if not shutil.which("pg_ctlcluster"):
        return
    for version in sorted(glob.glob("/etc/postgresql/*")):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", Path(version).name, "main", "start"],
            check=False,
            capture_output=True,
            timeout=60,
        )


async def _can_connect(url: str) -> str | None:
    try:
        connection = await connect(url, within_s=5)
    except (OSError, asyncpg.PostgresError) as error:
        return f"{error.__class__.__name__}: {error}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    problem = await _can_connect(PG_URL)
    if problem:
        _start_local_postgres()
        problem = await _can_connect(PG_URL)
    if problem:
        message = f"PostgreSQL at {PG_URL} unreachable ({problem})"
        if IN_CI:
            pytest.fail(message + "; CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(message + " (set TEST_POSTGRES_URL)")
    name = f"leadflow_test_{uuid4().hex[:12]}"
    await admin(PG_URL, f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        await admin(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _migrated(kind: str, url: str) -> Database:
    settings = load_settings(db={"url": url, "pool_size": 20})
    engine = make_engine(settings.db)
    await upgrade(engine)
    return Database(kind=kind, url=settings.db.url, engine=engine, sessions=make_sessions(engine))


@pytest.fixture(scope="session")
async def pg_database(postgres_url: str) -> AsyncIterator[Database]:
    database = await _migrated("postgresql", postgres_url)
    yield database
    await database.engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    path = tmp_path_factory.mktemp("sqlite") / "leadflow.db"
    database = await _migrated("sqlite", f"sqlite+aiosqlite:///{path}")
    yield database
    await database.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def _backend(request: pytest.FixtureRequest) -> Database:
    name = "pg_database" if request.param == "postgresql" else "sqlite_database"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def db(_backend: Database) -> AsyncIterator[Database]:
    """The same test on both databases, each test starting from empty tables."""
    await _backend.clear()
    yield _backend


@pytest.fixture
async def pg(pg_database: Database) -> AsyncIterator[Database]:
    """PostgreSQL only (row locks, SKIP LOCKED, many connections at once)."""
    await pg_database.clear()
    yield pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def _unmigrated_server(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL server's URL, or None for SQLite."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return None


@pytest.fixture
async def unmigrated(
    _unmigrated_server: str | None, tmp_path: Path
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """An empty database of its own, on each backend, for migration tests: its URL and engine."""
    server = _unmigrated_server
    if server is None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'migration.db'}"
        engine = make_engine(load_settings(db={"url": url}).db)
        yield url, engine
        await engine.dispose()
        return
    name = f"migration_{uuid4().hex[:12]}"
    await admin(server, f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(load_settings(db={"url": url}).db)
    try:
        yield url, engine
    finally:
        await engine.dispose()
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this run's own, which outage tests stop and start (the machine's
    server is everyone's). Under ``CI=true`` missing server binaries fail the run."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as error:
        if IN_CI:
            pytest.fail(f"{error}; CI must run the database outage tests", pytrace=False)
        pytest.skip(str(error))
    with server:
        yield server


@pytest.fixture
async def outage_db(pg_server: PostgresServer) -> AsyncIterator[Database]:
    """A migrated, empty database on ``pg_server``, which the test may take down; the server is
    running again after the test."""
    if not pg_server.running:
        pg_server.start()
    name = f"outage_{uuid4().hex[:12]}"
    server = make_url(pg_server.url).render_as_string(hide_password=False)
    await admin(server, f'CREATE DATABASE "{name}"')
    database = await _migrated("postgresql", make_url(server).set(database=name).render_as_string())
    try:
        yield database
    finally:
        await database.engine.dispose()
        if not pg_server.running:
            pg_server.start()
        await admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Kafka-protocol broker per run; tests isolate themselves by topic prefix."""
    embedded = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log")
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on 127.0.0.1 (shared rate limits)."""
    try:
        server = RedisServer(tmp_path)
    except RedisUnavailable as error:
        pytest.fail(str(error), pytrace=False)  # never skipped: the suite needs its Redis
    with server:
        yield server
