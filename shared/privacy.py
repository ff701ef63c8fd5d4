"""Erasing a person's data wherever a copy is held: what counts as personal, and the scrubbing of
stored events (the outbox's, the webhook messages') shared by the services that hold them.

Erasure is one transaction: intake erases the lead and its own copies, then runs each
``ErasureStep`` that the composition root gathered from the other services (services/api.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

ErasureStep = Callable[[AsyncSession, UUID], Awaitable[None]]
"""A service's part of erasing a lead, in the erasure's transaction."""
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "name",
        "full_name",
        "company",
        "title",
        "website",
        "company_domain",
        "ip_address",
        "address",
        "street_address",
        "city",
        "postal_code",
        "custom",
        "raw",
        "submission",
        "fields",
        "field_data",
        "user_column_data",
        "page_url",
        "referrer",
        "consent",
        "note",
        "notes",
    }
)


def redact(detail: Any) -> Any:
    """A history detail without personal keys, at any depth."""
    if isinstance(detail, dict):
        return {k: redact(v) for k, v in detail.items() if k not in PERSONAL_KEYS}
    if isinstance(detail, list):
        return [redact(item) for item in detail]
    return detail


def redact_event(payload: str) -> str:
    """An event as stored (a CloudEvent's JSON) without personal data: personal keys leave its
    ``data``, and an activity's ``detail`` (whatever the sender reported) goes entirely."""
    document = orjson.loads(payload)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        return payload
    data = redact(data)
    if document.get("type") == "lead.activity" and "detail" in data:
        data["detail"] = {}
    if data == document["data"]:
        return payload
    return orjson.dumps(document | {"data": data}).decode()


async def scrub_payloads(session: AsyncSession, table: Any, where: Any) -> None:
    """Redact (``redact_event``) the stored events of ``table`` (``seq``, ``payload``) that
    ``where`` selects."""
    rows = await session.execute(select(table.c.seq, table.c.payload).where(where))
    params = []
    for seq, payload in rows:
        cleaned = redact_event(payload)
        if cleaned != payload:
            params.append({"b_seq": seq, "b_payload": cleaned})
    if params:
        statement = update(table).where(table.c.seq == bindparam("b_seq"))
        await session.execute(statement.values(payload=bindparam("b_payload")), params)
