"""Recording: the consumer's side of the queue. One message per interested subscription, and
a lease on those that can go at once, handed to this process's dispatcher after the commit."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol
from uuid import UUID

import orjson
from sqlalchemy import ARRAY, Select, String, TextualSelect, any_, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks import chat, filters
from services.webhooks.matching import ERASED, QUALIFIED, outbound, receives
from services.webhooks.models import CLOUDEVENTS, PENDING, SLACK, WEBHOOK
from services.webhooks.queue import PENDING_LITERAL, Claimed, messages, subscriptions
from services.webhooks.settings import WebhooksConfig
from services.webhooks.signing import signing_secrets
from shared import tracing
from shared.db import among, insert_ignoring_conflicts, unnest_arrays
from shared.events import CloudEvent
from shared.ids import new_id


async def record(
    session: AsyncSession, event: CloudEvent, *, settings: WebhooksConfig, now: datetime
) -> int:
    """One pending message per enabled subscription that wants ``event``; a redelivered event
    adds nothing (unique subscription + event id). Returns how many subscriptions want it."""
    return (await record_many(session, [event], settings=settings, now=now)).count


class Slots(Protocol):
    """The dispatcher of this process, as ``record_many`` sees it: a slot taken for each message
    leased as it is recorded, given back if that message is not inserted after all."""

    @property
    def lease(self) -> timedelta: ...

    def reserve(self, endpoint: UUID, *, half_open: bool) -> bool: ...

    def unreserve(self, endpoint: UUID) -> None: ...

    async def claim_backlog(
        self, session: AsyncSession, endpoints: Collection[UUID], now: datetime
    ) -> list[Claimed]: ...


@dataclass(frozen=True)
class Recorded:
    count: int
    """Messages the batch asked for (a redelivered event's are not inserted again)."""
    leased: list[Claimed] = field(default_factory=list)
    """Leased in this transaction (new ones, and a backlog's oldest): the dispatcher that
    reserved their slots sends them once it commits (``accept``)."""
    waiting: frozenset[tuple[UUID, str]] = frozenset()
    """The (endpoint, lead) queues of the batch's messages not leased here (a redelivered event's
    included, though not inserted again): claims are to find them (some once the message ahead
    of them in their queue is settled)."""
    batched: dict[UUID, int] = field(default_factory=dict)
    """Messages per CRM subscription (the CRM sync's, never leased here): a full batch's worth
    wakes the sync once the transaction commits."""


async def record_many(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    *,
    settings: WebhooksConfig,
    now: datetime,
    slots: Slots | None = None,
) -> Recorded:
    """``record`` for a consumer's batch: the subscriptions read once, the messages inserted in
    one statement, in the batch's order (so ``seq`` keeps each lead's order).

    With ``slots``, a message that can go at once is leased in this transaction, as a claim
    would lease it: it heads its (endpoint, lead) queue (no earlier pending message of that lead
    for that endpoint, in the table or earlier in the batch), its endpoint is not paused, and
    ``slots`` has room for it (the dispatcher's per-endpoint limits, one probe at a time for a
    half-open circuit). For an endpoint whose messages already wait for a claim (``slots``
    refused one), the new ones are not leased; its oldest due ones are claimed here instead, so
    nothing new overtakes them. After the commit the dispatcher sends what was leased without a
    claim of its own; if the process dies first, the leases expire and any dispatcher claims
    those messages."""
    wanted = (await session.execute(_subscriptions())).all()
    rows = _messages(events, wanted, settings, now)
    endpoints = {s.id: s for s in wanted}
    batched = _batched(rows, endpoints)
    if slots is None or not rows:
        if rows:
            await _insert(session, rows)
        return Recorded(len(rows), waiting=_queues(rows), batched=batched)
    chosen = _take(_heads(rows, await _queued(session, rows)), endpoints, slots, settings, now)
    for row in chosen:
        row["locked_until"] = now + slots.lease
    try:
        inserted = await _insert(session, rows)
        # Older messages wait for a backlogged endpoint: claim them (FIFO), not the new ones.
        claimed = await slots.claim_backlog(session, endpoints.keys() & _endpoints(rows), now)
    except BaseException:
        for row in chosen:
            slots.unreserve(row["subscription_id"])
        raise
    leased = []
    for row in chosen:
        if row["id"] in inserted:
            endpoint = endpoints[row["subscription_id"]]
            threshold = settings.webhooks.breaker_failures
            leased.append(_claimed(row, inserted[row["id"]], endpoint, threshold, now))
        else:
            slots.unreserve(row["subscription_id"])
    lent = {row["id"] for row in chosen}
    # A redelivered event's messages (not inserted again) may wait too: a claim may look.
    waiting = _queues(
        r
        for r in rows
        if r["id"] not in lent and r["subscription_id"] not in batched  # a CRM's: the sync's
    )
    return Recorded(len(rows), leased + claimed, waiting, batched)


async def _insert(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[UUID, int]:
    """Insert the messages (a redelivered event's are there already: skipped), in ``rows``'
    order; the ``seq`` of each inserted, by id. On PostgreSQL one statement over one array per
    column: an INSERT executed for many rows is sent and executed once per row."""
    if session.get_bind().dialect.name == "postgresql":
        parameters = {name: [row[name] for row in rows] for name in MESSAGE_COLUMNS}
        return dict((await session.execute(_insert_unnested(), parameters)).all())
    statement = insert_ignoring_conflicts(session, messages)
    returned = statement.returning(messages.c.id, messages.c.seq)
    return dict((await session.execute(returned, rows)).all())


MESSAGE_COLUMNS = (
    "id",
    "subscription_id",
    "event_id",
    "event_type",
    "lead_id",
    "payload",
    "status",
    "attempts",
    "due_at",
    "locked_until",
    "created_at",
    "traceparent",
)
"""The columns ``_message`` fills."""


@cache
def _insert_unnested() -> TextualSelect:
    return text(
        f"INSERT INTO webhook_messages ({', '.join(MESSAGE_COLUMNS)})"
        f" SELECT * FROM unnest({unnest_arrays(messages, MESSAGE_COLUMNS)})"
        " ON CONFLICT DO NOTHING RETURNING id, seq"
    ).columns(messages.c.id, messages.c.seq)


def _batched(rows: Iterable[dict[str, Any]], endpoints: Mapping[UUID, Any]) -> dict[UUID, int]:
    counts: dict[UUID, int] = {}
    for row in rows:
        if endpoints[row["subscription_id"]].kind != WEBHOOK:
            counts[row["subscription_id"]] = counts.get(row["subscription_id"], 0) + 1
    return counts


def _endpoints(rows: Iterable[dict[str, Any]]) -> set[UUID]:
    return {row["subscription_id"] for row in rows}


def _queues(rows: Iterable[dict[str, Any]]) -> frozenset[tuple[UUID, str]]:
    return frozenset((row["subscription_id"], row["lead_id"]) for row in rows)


def _subscriptions() -> Select[Any]:
    return select(
        subscriptions.c.id,
        subscriptions.c.event_types,
        subscriptions.c.filter,
        subscriptions.c.format,
        subscriptions.c.kind,
        subscriptions.c.consent_flags,
        subscriptions.c.url,
        subscriptions.c.secret,
        subscriptions.c.previous_secret,
        subscriptions.c.previous_secret_until,
        subscriptions.c.consecutive_failures,
        subscriptions.c.paused_until,
    ).where(subscriptions.c.enabled.is_(True))


def _messages(
    events: Sequence[CloudEvent], wanted: Sequence[Any], settings: WebhooksConfig, now: datetime
) -> list[dict[str, Any]]:
    config = settings.webhooks
    rows = []
    for event in events:
        document: dict[str, Any] | None = None
        trace = tracing.traceparent_of(event) if tracing.active else None
        bodies: dict[tuple[str, tuple[str, ...]], str] = {}  # each rendered once per event
        for subscription in wanted:
            if not receives(subscription.event_types, event.type):
                continue
            if subscription.kind != WEBHOOK and event.type != QUALIFIED:
                continue  # a CRM takes the handoff only (see docs/crm.md on erasure)
            if document is None:
                document = orjson.loads(event.encode())
            if event.type != ERASED and not filters.passes(subscription.filter, document):
                continue
            flags = subscription.consent_flags
            grants = tuple(config.consent_flags if flags is None else flags)
            shape = (subscription.format if subscription.kind == WEBHOOK else CLOUDEVENTS, grants)
            if shape not in bodies:
                shown = outbound(document, config.consent_fields, grants)
                bodies[shape] = _body(shown, shape[0])
            rows.append(_message(subscription.id, event, bodies[shape], now, trace))
    return rows


def _body(shown: dict[str, Any], format_: str) -> str:
    """The body as sent, rendered from the event as subscribers may see it (consent applied),
    so a chat message shows nothing the CloudEvent would not.

    Rendered as the message is recorded, not as it is sent: the stored payload is the body as
    sent, so what is signed, logged, erased (``store.erase_copies``) and replayed is what the
    receiver got, and a replay keeps its ``webhook-id`` with the same content."""
    return orjson.dumps(chat.message(shown) if format_ == SLACK else shown).decode()


def _message(
    subscription_id: UUID, event: CloudEvent, body: str, now: datetime, trace: str | None
) -> dict[str, Any]:
    return {  # the keys of MESSAGE_COLUMNS
        "id": new_id(),
        "subscription_id": subscription_id,
        "event_id": str(event.id),
        "event_type": event.type,
        "lead_id": event.key,
        "payload": body,
        "status": PENDING,
        "attempts": 0,
        "due_at": now,
        "locked_until": None,
        "created_at": now,
        "traceparent": trace,
    }


async def _queued(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[tuple[UUID, str]]:
    """The (endpoint, lead) queues of these rows' leads that already hold a pending message."""
    leads = sorted({row["lead_id"] for row in rows})
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: the statement's text does not depend on the batch's size.
        of_leads = messages.c.lead_id == any_(bindparam("leads", leads, type_=ARRAY(String)))
    else:
        of_leads = among(session, messages.c.lead_id, leads)
    query = select(messages.c.subscription_id, messages.c.lead_id).where(
        of_leads, messages.c.status == PENDING_LITERAL
    )
    return {(s, lead) for s, lead in (await session.execute(query)).all()}


def _heads(rows: Sequence[dict[str, Any]], queued: set[tuple[UUID, str]]) -> list[dict[str, Any]]:
    """The rows that head their (endpoint, lead) queue: none queued before, none earlier here."""
    seen = set(queued)
    heads = []
    for row in rows:
        key = (row["subscription_id"], row["lead_id"])
        if key not in seen:
            seen.add(key)
            heads.append(row)
    return heads


def _take(
    heads: Sequence[dict[str, Any]],
    endpoints: Mapping[UUID, Any],
    slots: Slots,
    settings: WebhooksConfig,
    now: datetime,
) -> list[dict[str, Any]]:
    """The heads whose endpoint is not paused and for which ``slots`` reserves a slot (a CRM's
    messages are the CRM sync's to batch: never leased here)."""
    taken = []
    for row in heads:
        endpoint = endpoints[row["subscription_id"]]
        if endpoint.kind != WEBHOOK:
            continue
        if endpoint.paused_until is not None and endpoint.paused_until > now:
            continue
        half_open = endpoint.consecutive_failures >= settings.webhooks.breaker_failures
        if slots.reserve(endpoint.id, half_open=half_open):
            taken.append(row)
    return taken


def _claimed(
    row: dict[str, Any], seq: int, endpoint: Any, threshold: int, now: datetime
) -> Claimed:
    return Claimed(
        seq=seq,
        id=row["id"],
        subscription_id=row["subscription_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        lead_id=row["lead_id"],
        payload=row["payload"],
        attempts=0,
        url=endpoint.url,
        secrets=signing_secrets(
            endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_until, now
        ),
        half_open=endpoint.consecutive_failures >= threshold,
        traceparent=row["traceparent"],
    )
