"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite, WAL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import JSON, ColumnElement, any_, bindparam, event, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.schema import Table

from shared.config import DatabaseSettings


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An engine that keeps statement parameters (secrets, personal data) out of its log lines
    and out of the text of its errors (``hide_parameters``)."""
    if settings.is_sqlite:
        return _sqlite_engine(settings)
    # A fixed pool: SQLAlchemy's default 5+10 churned connections under 64 concurrent requests here
    # and halved throughput; 20 kept open doubled it.
    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=False,
        echo=settings.echo,
        hide_parameters=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection the server closed (a restart) is replaced at checkout, without a
    round trip (unlike ``pool_pre_ping``): asyncpg knows when its socket is gone. SQLAlchemy
    invalidates a connection whose statement fails, but not one whose failure it never saw: a
    ``BEGIN`` sent by ``driver_connection`` straight to asyncpg, which left the dead connection
    to be pooled and handed out again, failing every transaction after the server came back."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def _sqlite_engine(settings: DatabaseSettings) -> AsyncEngine:
    path = settings.url.split(":///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        echo=settings.echo,
        hide_parameters=True,
        connect_args={"timeout": 30},
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
        # one failing with "database is locked" when it upgrades a read lock mid-transaction.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def snapshot(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose reads all see the database at one moment, for a view built from several
    queries. PostgreSQL's default (read committed) gives each statement its own moment, so a lead
    read before a scoring batch committed could be shown with that batch's history. SQLite's
    transactions already are one moment (``BEGIN IMMEDIATE``)."""
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            await session.connection(
                execution_options={
                    "isolation_level": "REPEATABLE READ",
                    "postgresql_readonly": True,
                }
            )
        yield session


def insert_ignoring_conflicts(session: AsyncSession, table: Table) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the session's dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return insert(table)


def among(
    session: AsyncSession | Session,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    values: Iterable[Any],
) -> ColumnElement[bool]:
    """``column IN values`` with one statement text whatever the number of values: on
    PostgreSQL ``column = ANY($1)``, one array parameter. An expanding ``IN`` renders a new text
    for each count, which asyncpg prepares anew (a round trip, and the server parses and plans
    it) and which pushes the statements used every batch out of its cache."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def after_commit(session: AsyncSession, call: Callable[[], object]) -> None:
    """``call`` once the session's transaction commits; never if it ends otherwise."""
    event.listen(session.sync_session, "after_commit", lambda _session: call(), once=True)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``execute`` is typed to return a ``Result``; for
    those statements it is a ``CursorResult``, which carries the count."""
    return cast(CursorResult[Any], result).rowcount


def upsert(session: AsyncSession | Session, table: Table) -> postgresql.Insert | sqlite.Insert:
    dialect = session.get_bind().dialect.name
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


async def insert_rows(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in the session's transaction. On PostgreSQL through ``COPY``: one compact
    binary message instead of a Bind/Execute pair per row (which cost more CPU than the rest of an
    intake request). Every row must have the same keys."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    values = []  # column by column, then zipped into records: no per-row Python loop
    for name in columns:
        column = [row[name] for row in rows]
        encode = _copy_encoder(table.c[name].type)
        if encode is not None:
            column = [None if value is None else encode(value) for value in column]
        values.append(column)
    records = list(zip(*values, strict=True))
    driver = await driver_connection(session)
    with translated(f"COPY {table.name} ({', '.join(columns)})"):
        await driver.copy_records_to_table(table.name, records=records, columns=columns)


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under a PostgreSQL session, in its transaction: for set-based
    statements whose shape must not depend on the batch size (arrays as parameters, COPY).
    Wrap calls in ``translated`` so errors read as SQLAlchemy's (transient or not)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection
    if adapted._transaction is None:
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its own first statement: a
        # statement sent straight to asyncpg before that would run, and commit, on its own.
        try:
            await adapted._start_transaction()
        except Exception as error:
            # A BEGIN on a sound connection does not fail: this one is lost, or being lost (the
            # server's goodbye read, its socket not yet seen closed: asyncpg's "cannot switch to
            # state 15"). SQLAlchemy never saw the error, so it is invalidated here, not pooled.
            await connection.invalidate(error)
            raise OperationalError("BEGIN", None, error, connection_invalidated=True) from error
    return raw.driver_connection


@contextmanager
def translated(statement: str) -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's, so callers tell transient trouble from bad input."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(statement, None, error) from error
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as error:
        raise OperationalError(statement, None, error) from error
    except asyncpg.PostgresError as error:
        raise DBAPIError(statement, None, error) from error


Rows = Sequence[dict[str, Any]]


async def insert_many(session: AsyncSession, *batches: tuple[Table, Rows]) -> None:
    """Insert rows into several tables at once, in the session's transaction; within a batch
    every row has the same keys. On PostgreSQL it is one statement (a data-modifying CTE per
    table, each over one array per column): one round trip where ``insert_rows`` makes one COPY
    per table, which costs ~0.3 ms of client CPU each, more than small batches cost to encode."""
    batches = tuple((table, rows) for table, rows in batches if rows)
    if not batches:
        return
    if session.get_bind().dialect.name != "postgresql":
        for table, rows in batches:
            await session.execute(insert(table), list(rows))
        return
    shape = tuple((table, tuple(rows[0])) for table, rows in batches)
    params: dict[str, list[Any]] = {}
    for index, (table, rows) in enumerate(batches):
        for name in shape[index][1]:
            encode = _copy_encoder(table.c[name].type)
            values = [row[name] for row in rows]
            if encode is not None:
                values = [None if value is None else encode(value) for value in values]
            params[f"t{index}_{name}"] = values
    await session.execute(_unnest_inserts(shape), params)


def unnest_arrays(table: Table, columns: Sequence[str], *, prefix: str = "") -> str:
    """``unnest``'s arguments for ``columns`` of ``table`` on PostgreSQL: one array parameter per
    column (named ``prefix`` + the column), cast to the column's type."""
    dialect = postgresql.dialect()
    return ", ".join(
        f"CAST(:{prefix}{name} AS {table.c[name].type.compile(dialect=dialect)}[])"
        for name in columns
    )


@cache
def _unnest_inserts(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Any:
    inserts = []
    for index, (table, columns) in enumerate(shape):
        arrays = unnest_arrays(table, columns, prefix=f"t{index}_")
        inserts.append(
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
        )
    *first, last = inserts
    ctes = ", ".join(f"t{index} AS ({sql})" for index, sql in enumerate(first))
    return text(f"WITH {ctes} {last}" if ctes else last)


def _copy_encoder(column_type: Any) -> Any:
    """How a value must be handed to asyncpg for COPY: JSON as text, UTC datetimes; else as is."""
    if isinstance(column_type, JSON) or isinstance(getattr(column_type, "impl", None), JSON):
        return _json_dumps
    return None


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
