"""The persisted delivery queue: claim due messages (``recording`` adds them, ``settle`` moves
them on).

Every state change is a short transaction; no HTTP call happens inside one. A claim writes a lease
(``locked_until``) and commits (the consumer may lease a new message as it records it, see
``recording``); the lease expiring (a crashed dispatcher) makes the message claimable again, so
delivery is at least once and receivers dedupe on ``webhook-id``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnClause, literal_column, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.models import CRM_KINDS, WEBHOOK, Subscription, WebhookMessage
from services.webhooks.signing import signing_secrets
from shared.db import among
from shared.models import table_of

messages = table_of(WebhookMessage)
PENDING_LITERAL: ColumnClause[str] = literal_column("'pending'")
"""A literal, not a bound parameter: PostgreSQL uses the partial indexes (``WHERE status =
'pending'``) only when it can see the value in the statement."""
subscriptions = table_of(Subscription)


@dataclass(frozen=True)
class Claimed:
    seq: int
    id: UUID
    subscription_id: UUID
    event_id: str
    event_type: str
    lead_id: str
    payload: str
    attempts: int
    url: str
    secrets: list[str]
    half_open: bool
    traceparent: str | None = None
    """The trace the attempt joins (``WebhookMessage.traceparent``)."""


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    lease: timedelta,
    in_flight: Mapping[UUID, int],
    per_endpoint: int,
    threshold: int,
    ahead: int = 0,
    refill: bool = False,
    endpoints: Collection[UUID] | None = None,
    kind: str = WEBHOOK,
    due_by: datetime | None = None,
    reserve: Callable[[Claimed], None] = lambda _claimed: None,
) -> list[Claimed]:
    """Lease up to ``limit`` due messages, each the oldest pending one of its lead for its
    endpoint, skipping endpoints that are disabled, paused or at their in-flight limit.

    ``ahead`` more than ``per_endpoint`` may be leased for an endpoint, to wait in the dispatcher
    for a free connection; such an endpoint is claimed for again only once its outstanding
    messages are down to ``per_endpoint`` (unless ``refill``), so a busy endpoint is refilled in
    batches, not one message per answer. ``endpoints``: only theirs. ``reserve`` is called for
    each message chosen, before the lease is written. ``kind``: the subscriptions' kind (the
    dispatcher sends plain webhooks; the CRM sync batches a CRM's). ``due_by``: only messages
    due by then (default ``now``)."""
    if kind != WEBHOOK and kind not in CRM_KINDS:
        raise ValueError(f"unknown subscription kind {kind!r}")
    # A due message is sent only when it heads its (endpoint, lead) queue. The check is a
    # correlated first ``seq`` of the queue: one probe of the queue index per candidate read in
    # due order, so a claim costs in proportion to what it takes, not to the pending rows (a
    # GROUP BY over every pending row, or an anti-join the planner may hash, does). As ``ORDER
    # BY seq LIMIT 1`` under ``enable_sort = off`` (below), only the queue index (in ``seq`` order
    # for one endpoint and lead) or the primary key (every row, so it never looks cheaper) can
    # answer it: as ``min(seq)``, planned with statistics from when few messages were pending,
    # PostgreSQL scanned the whole due index for each candidate (0.2-0.5 s a claim in a backlog).
    earlier = messages.alias("earlier")
    head = (
        select(earlier.c.seq)
        .where(
            earlier.c.subscription_id == messages.c.subscription_id,
            earlier.c.lead_id == messages.c.lead_id,
            earlier.c.status == PENDING_LITERAL,
        )
        .order_by(earlier.c.seq)
        .limit(1)
        .scalar_subquery()
    )
    full = [
        s for s, n in in_flight.items() if n >= per_endpoint + (ahead if refill else min(ahead, 1))
    ]
    query = (
        select(messages, subscriptions.c.url, subscriptions.c.secret)
        .add_columns(
            subscriptions.c.previous_secret,
            subscriptions.c.previous_secret_until,
            subscriptions.c.consecutive_failures,
        )
        .join(subscriptions, subscriptions.c.id == messages.c.subscription_id)
        .where(
            messages.c.seq == head,
            messages.c.status == PENDING_LITERAL,
            messages.c.due_at <= (now if due_by is None else due_by),
            or_(messages.c.locked_until.is_(None), messages.c.locked_until <= now),
            subscriptions.c.enabled.is_(True),
            subscriptions.c.kind == literal_column(f"'{kind}'"),
            or_(subscriptions.c.paused_until.is_(None), subscriptions.c.paused_until <= now),
        )
        .order_by(messages.c.due_at)  # the due index's order: the scan stops at ``limit``
        .limit(limit)
    )
    if full:
        query = query.where(messages.c.subscription_id.not_in(full))
    if endpoints is not None:
        query = query.where(among(session, messages.c.subscription_id, endpoints))
    if session.get_bind().dialect.name == "postgresql":
        # Walk the due index in order even when the statistics are stale (a fresh or bulk-loaded
        # table looks empty to the planner, which then sorts every due row before the limit).
        await session.execute(text("SET LOCAL enable_sort = off"))
        # Two dispatchers never lease one row; each skips what the other is claiming.
        query = query.with_for_update(skip_locked=True, of=messages)
    chosen = _within_limits(
        (await session.execute(query)).all(), in_flight, per_endpoint + ahead, threshold, now
    )
    for message in chosen:
        reserve(message)
    if chosen:
        await session.execute(
            update(messages)
            .where(among(session, messages.c.seq, [c.seq for c in chosen]))
            .values(locked_until=now + lease)
        )
    return chosen


def _within_limits(
    rows: Sequence[Any],
    in_flight: Mapping[UUID, int],
    per_endpoint: int,
    threshold: int,
    now: datetime,
) -> list[Claimed]:
    taken: dict[UUID, int] = dict(in_flight)
    chosen = []
    for row in rows:
        half_open = row.consecutive_failures >= threshold
        cap = 1 if half_open else per_endpoint  # a half-open circuit sends one probe at a time
        if taken.get(row.subscription_id, 0) >= cap:
            continue
        taken[row.subscription_id] = taken.get(row.subscription_id, 0) + 1
        chosen.append(
            Claimed(
                seq=row.seq,
                id=row.id,
                subscription_id=row.subscription_id,
                event_id=row.event_id,
                event_type=row.event_type,
                lead_id=row.lead_id,
                payload=row.payload,
                attempts=row.attempts,
                url=row.url,
                secrets=signing_secrets(
                    row.secret, row.previous_secret, row.previous_secret_until, now
                ),
                half_open=half_open,
                traceparent=row.traceparent,
            )
        )
    return chosen
