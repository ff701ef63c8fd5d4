"""Which errors mean "the database is not available right now": the one classification.

An outage is waited out, never blamed on the work at hand: HTTP answers 503 with
``Retry-After`` (``shared.problems``), consumers retry without spending a message's attempts
(``shared.consumer``), background loops back off and go on. Anything else is the work's own
fault (a bug, bad data) and is handled as such: a 500, a dead letter after its attempts.

An outage, from whichever driver:
- the connection is lost or cannot be made: ``OSError`` (refused, reset, unreachable; asyncio
  raises a bare ``OSError`` when every address of a host refused), ``TimeoutError``, a
  connection SQLAlchemy marked invalidated, a pool with no connection free in time;
- PostgreSQL's SQLSTATE classes 08 (connection exception), 53 (insufficient resources: too many
  connections, disk full, out of memory), 57P (operator intervention: shutting down, starting
  up, crash recovery, terminated by an administrator) and 58 (system error: I/O);
- SQLite's result codes BUSY and LOCKED (another writer holds the lock past ``busy_timeout``),
  NOMEM, IOERR, FULL, CANTOPEN and PROTOCOL.

Other ``OperationalError``/``InterfaceError`` (``CONNECTION_LEVEL``) that carry no code count as
outages too; those with a code are decided by it (SQLite's "no such table" is an
``OperationalError`` with code ERROR: a bug, which retrying forever would hide and a consumer
would block on).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import asyncpg
from sqlalchemy import exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi as adapted

UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P", "58")
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
"""Serialization failure, deadlock: the transaction can simply run again."""
SQLITE_UNAVAILABLE = frozenset({5, 6, 7, 10, 13, 14, 15})
"""BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN, PROTOCOL (primary result codes)."""
CONNECTION_LEVEL = (
    exc.OperationalError,
    exc.InterfaceError,
    adapted.OperationalError,
    adapted.InterfaceError,
    asyncpg.InterfaceError,
)
"""Errors of the connection rather than of a statement, in SQLAlchemy's classes, in those of its
asyncpg adaptation (raised as they are by what bypasses SQLAlchemy's execution: see
``shared.db.driver_connection``) and in asyncpg's ("connection is closed"): an outage when they
carry no code that says otherwise."""


def unavailable(error: BaseException) -> bool:
    """The database (or the network to it) is down or overloaded: a retry later will do."""
    connection_level = False
    for link in _chain(error):
        if isinstance(link, OSError | TimeoutError | exc.TimeoutError | exc.DisconnectionError):
            return True  # exc.TimeoutError: the pool had no connection free in time
        if isinstance(link, exc.DBAPIError) and link.connection_invalidated:
            return True
        if (state := sqlstate(link)) is not None:
            return state.startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
        if (code := _sqlite_code(link)) is not None:
            return code in SQLITE_UNAVAILABLE
        connection_level = connection_level or isinstance(link, CONNECTION_LEVEL)
    return connection_level


def conflict(error: BaseException) -> bool:
    """A deadlock or serialization failure."""
    return any(sqlstate(link) in CONFLICT_SQLSTATES for link in _chain(error))


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE a PostgreSQL driver's error carries (asyncpg, and SQLAlchemy's adaptation)."""
    state = getattr(error, "sqlstate", None)
    return state if isinstance(state, str) and len(state) == 5 else None


def describe(error: BaseException) -> str:
    """A short, parameter-free name for a log line: the class and, if any, the SQLSTATE."""
    for link in _chain(error):
        if state := sqlstate(link):
            return f"{error.__class__.__name__} {state}"
    return error.__class__.__name__


def report(log: logging.Logger, what: str, error: BaseException) -> None:
    """Log a failure that will be retried: an outage as one line, anything else with its
    traceback (a bug to look into)."""
    if unavailable(error):
        log.warning("%s: database unavailable (%s)", what, describe(error))
    else:
        log.warning("%s", what, exc_info=error)


def _sqlite_code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver's error SQLAlchemy wraps, and their causes (not their contexts:
    an error raised while handling an outage is not one)."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        orig = getattr(link, "orig", None)
        link = orig if isinstance(orig, BaseException) else link.__cause__
