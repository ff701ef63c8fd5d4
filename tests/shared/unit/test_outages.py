"""The outage classification over the shapes each driver's errors take (the real ones are raised
by tests/composition/integration/test_database_outage.py)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import exc

from shared.outages import conflict, describe, unavailable


class DriverError(Exception):
    """What asyncpg and SQLAlchemy's adaptation of it carry: a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException, *, invalidated: bool = False) -> exc.DBAPIError:
    return exc.DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


def sqlite_error(code: int, kind: type[sqlite3.Error] = sqlite3.OperationalError) -> BaseException:
    error = kind("from SQLite")
    error.sqlite_errorcode = code
    return error


def caused(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (wrapped(DriverError("57P03")), True),  # the database system is shutting down
        (wrapped(DriverError("57P01")), True),  # terminating connection (administrator)
        (wrapped(DriverError("08006")), True),  # connection failure
        (wrapped(DriverError("53300")), True),  # too many connections
        (wrapped(DriverError("53100")), True),  # disk full
        (wrapped(DriverError("58030")), True),  # I/O error
        (wrapped(DriverError("57014")), False),  # a statement cancelled: not the server
        (wrapped(DriverError("23505")), False),  # unique violation
        (wrapped(DriverError("22012")), False),  # division by zero
        (wrapped(DriverError("40001")), False),  # serialization failure: a conflict
        (wrapped(DriverError("23505"), invalidated=True), True),  # and the connection died
        (exc.OperationalError("SELECT 1", None, DriverError("42P01")), False),  # no table
        (exc.OperationalError("SELECT 1", None, Exception("no code")), True),
        (exc.InterfaceError("SELECT 1", None, Exception("connection is closed")), True),
        (exc.TimeoutError("QueuePool limit reached"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (OSError("Multiple exceptions: [Errno 111] …"), True),
        (TimeoutError(), True),
        (exc.OperationalError("INSERT", None, sqlite_error(5)), True),  # BUSY: locked
        (exc.OperationalError("INSERT", None, sqlite_error(14)), True),  # CANTOPEN
        (exc.OperationalError("INSERT", None, sqlite_error(1)), False),  # no such table
        (exc.IntegrityError("INSERT", None, sqlite_error(2067, sqlite3.IntegrityError)), False),
        (caused(RuntimeError("storing failed"), wrapped(DriverError("57P03"))), True),
        (ValueError("bad data"), False),
        (KeyError("bug"), False),
    ],
)
def test_unavailable(error: BaseException, outage: bool) -> None:
    assert unavailable(error) is outage


def test_an_error_raised_while_handling_an_outage_is_not_one() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except OSError:
            raise ValueError("a bug in the handler") from None
    except ValueError as error:
        assert error.__context__ is not None
        assert not unavailable(error)


def test_conflict_and_describe() -> None:
    assert conflict(wrapped(DriverError("40P01"))) and conflict(wrapped(DriverError("40001")))
    assert not conflict(wrapped(DriverError("57P03")))
    assert describe(wrapped(DriverError("57P03"))) == "DBAPIError 57P03"
    assert describe(ConnectionRefusedError(111, "refused")) == "ConnectionRefusedError"
