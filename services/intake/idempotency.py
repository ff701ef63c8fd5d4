"""Idempotency records for requests other than ``POST /v1/leads``: claim a key, or get its answer.

The same table and the same claim as the lead post (``store._claim_keys``): the key is inserted
with ``INSERT … ON CONFLICT``; an expired record (older than ``intake.idempotency_hours``) is
replaced, a live one is left and read back. A concurrent transaction that claimed the key first
makes this one wait on it (PostgreSQL: the unique index; SQLite: the write lock), then find its
committed answer. The claim and the answer are written in the caller's transaction, so a request
that fails leaves no record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import IdempotencyRecord
from shared.db import among
from shared.models import table_of
from shared.problems import Problem

records = table_of(IdempotencyRecord)
ANSWERED = 202


@dataclass(frozen=True, slots=True)
class Key:
    key: str
    """Scoped so that different callers and request kinds never meet."""
    field: str
    """What a problem about this key names: ``Idempotency-Key`` or the body field."""


def fingerprint(request: Any) -> str:
    """SHA-256 of a request's JSON form (keys sorted): the same key must mean the same request."""
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def first_answer(
    session: AsyncSession,
    keys: Sequence[Key],
    request_fingerprint: str,
    *,
    now: datetime,
    hours: float,
) -> dict[str, Any] | None:
    """Claim every key; the stored answer if one of them was answered before, else ``None`` (the
    caller then does the work and calls ``remember``). A key used for another request is a 422;
    one whose first request is still open (cannot be committed, but be safe) a 409."""
    if not keys:
        return None
    rows = [
        {
            "key": k.key,
            "fingerprint": request_fingerprint,
            "status": 0,
            "body": {},
            "created_at": now,
            "cutoff": now - timedelta(hours=hours),
        }
        for k in sorted(keys, key=lambda k: k.key)
    ]
    result = await session.execute(claim_statement(session.get_bind().dialect.name), rows)
    claimed = set(result.scalars())
    taken = {k.key: k for k in keys if k.key not in claimed}
    if not taken:
        return None
    stored = await session.execute(
        select(records.c.key, records.c.fingerprint, records.c.status, records.c.body)
        .where(among(session, records.c.key, sorted(taken)))
        .order_by(records.c.key)
    )
    answer = None
    for key, stored_fingerprint, status, body in stored:
        field = taken[key].field
        if stored_fingerprint != request_fingerprint:
            raise Problem(
                422,
                "Idempotency key reused",
                f"this {field} was used for a different request",
                field=field,
            )
        if status != ANSWERED:
            raise Problem(409, "Conflict", "a request with this key is in progress", field=field)
        answer = answer or body
    if answer is not None and len(taken) < len(keys):
        await remember(session, [k for k in keys if k.key not in taken], answer)
    return answer


async def remember(session: AsyncSession, keys: Sequence[Key], answer: dict[str, Any]) -> None:
    """Store the answer under every freshly claimed key (in the caller's transaction)."""
    if keys:
        statement = (
            update(records)
            .where(records.c.key == bindparam("b_key"))
            .values(status=ANSWERED, body=bindparam("b_body"))
        )
        await session.execute(statement, [{"b_key": k.key, "b_body": answer} for k in keys])


@cache
def claim_statement(dialect: str) -> Any:
    """Insert the key; an expired record of it is replaced; a live one is left (not returned)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(records).values(
        key=bindparam("key"),
        fingerprint=bindparam("fingerprint"),
        status=bindparam("status"),
        body=bindparam("body"),
        created_at=bindparam("created_at"),
    )
    fresh = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[records.c.key],
        set_={name: fresh[name] for name in ("fingerprint", "status", "body", "created_at")},
        where=records.c.created_at < bindparam("cutoff"),
    ).returning(records.c.key)
