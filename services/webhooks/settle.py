"""Settling an attempt: log it, move the message along its schedule, update the endpoint's
health (circuit breaker), and disable an endpoint that is gone or has failed for too long."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, insert, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhooks import breaker
from services.webhooks.metrics import MESSAGES_EXHAUSTED
from services.webhooks.models import DELIVERED, EXHAUSTED, PENDING, DeliveryAttempt, Subscription
from services.webhooks.queue import PENDING_LITERAL, Claimed, messages
from services.webhooks.schedule import Verdict, classify, next_due, retry_after_s
from services.webhooks.settings import WebhooksConfig
from shared.consumer import is_transient
from shared.db import among, insert_rows
from shared.events import SubscriptionDisabled, SubscriptionDisabledData
from shared.ids import new_id
from shared.models import table_of
from shared.outages import conflict, describe
from shared.outbox import stage

SOURCE = "/leadflow/webhooks"
T = TypeVar("T")
log = logging.getLogger(__name__)
attempts = table_of(DeliveryAttempt)


ENDPOINT_LOCK = {"key_share": True}
"""How a settlement locks its endpoint's row before reading the health it moves (``FOR NO KEY
UPDATE`` on PostgreSQL): against other settlements of that endpoint, not against the consumers
recording messages for it, whose foreign keys take key-share locks on the row (with ``FOR
UPDATE`` each waited for the other's transaction to end)."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced; ``status`` None means no HTTP answer."""

    attempted_at: datetime
    status: int | None
    latency_ms: float
    retry_after: str | None = None
    error: str | None = None
    excerpt: str | None = None
    refused: bool = False

    @property
    def verdict(self) -> Verdict:
        return Verdict.REFUSED if self.refused else classify(self.status)


@dataclass(frozen=True)
class Settlement:
    """What settling changed besides the attempts' log and the messages' schedules: messages
    given up on (kept, ``exhausted``, for replay) and whether the endpoint was disabled (an
    event is staged for it). Counted by the caller once its transaction has committed."""

    retries_spent: int = 0
    """Messages whose last scheduled attempt failed."""
    rejected: int = 0
    """Messages whose record a CRM refused for good (not retried)."""
    disabled: bool = False


def count_exhausted(settlement: Settlement) -> None:
    """``leadflow_webhook_messages_exhausted_total``, after the settlement's commit."""
    if settlement.retries_spent:
        MESSAGES_EXHAUSTED.labels("retries_spent").inc(settlement.retries_spent)
    if settlement.rejected:
        MESSAGES_EXHAUSTED.labels("rejected").inc(settlement.rejected)


async def until_settled(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    who: str,
) -> T:
    """``work`` (a settlement) in a transaction of its own, tried again after an outage or a
    conflict (a deadlock with another settlement): an attempt that happened is logged in the
    end, never dropped."""
    backoff = 0.05
    while True:
        try:
            async with sessions.begin() as session:
                return await work(session)
        except Exception as error:
            if not (is_transient(error) or conflict(error)):
                raise
            log.warning("%s: settling failed (%s); retrying", who, describe(error))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def settle(
    session: AsyncSession,
    claimed: Claimed,
    outcome: Outcome,
    *,
    settings: WebhooksConfig,
    now: datetime,
    rand: float,
) -> Settlement:
    """Log the attempt, move the message on and update the endpoint's health."""
    verdict = outcome.verdict
    subscription = await session.get(
        Subscription, claimed.subscription_id, with_for_update=ENDPOINT_LOCK
    )
    if subscription is None:
        return Settlement()
    await session.execute(insert(attempts).values(_attempt_row(claimed, outcome, verdict)))
    if verdict is Verdict.DELIVERED:
        await _delivered(session, claimed, outcome, subscription, now)
        return Settlement()
    return await _failed(
        session, claimed, outcome, subscription, settings=settings, now=now, rand=rand
    )


async def settle_delivered(
    session: AsyncSession, batch: list[tuple[Claimed, Outcome]], *, now: datetime
) -> None:
    """Settle many successful attempts to one endpoint at once: one lock of the endpoint, one
    insert of the attempts (COPY on PostgreSQL), one update per distinct status code (the common
    case of a healthy endpoint costs a handful of statements per batch, not three per delivery)."""
    endpoint = batch[0][0].subscription_id
    subscription = await session.get(Subscription, endpoint, with_for_update=ENDPOINT_LOCK)
    if subscription is None:
        return
    rows = [_attempt_row(claimed, outcome, Verdict.DELIVERED) for claimed, outcome in batch]
    await insert_rows(session, attempts, rows)
    by_status: dict[int | None, list[int]] = {}
    for claimed, outcome in batch:
        by_status.setdefault(outcome.status, []).append(claimed.seq)
    for status, seqs in by_status.items():
        await session.execute(
            update(messages)
            .where(among(session, messages.c.seq, seqs))
            .values(
                attempts=messages.c.attempts + 1,
                locked_until=None,
                status=DELIVERED,
                delivered_at=now,
                last_status=status,
                last_error=None,
            )
        )
    await _recovered(session, subscription, now)


@dataclass(frozen=True)
class Settled:
    """What became of one message of a CRM batch request: delivered (``error`` then notes what
    was left out), rejected for good, or to retry (the request's verdict)."""

    claimed: Claimed
    verdict: Verdict
    error: str | None = None


async def settle_batch(
    session: AsyncSession,
    request: Outcome,
    settled: list[Settled],
    *,
    settings: WebhooksConfig,
    now: datetime,
    rand: Callable[[], float],
) -> Settlement:
    """Settle the messages of one CRM batch request (one endpoint): one attempt row each with its
    own verdict and the CRM's message, each message moved on by its own verdict (a rejected
    record is not retried), and the endpoint's health moved once, by the request: a CRM that
    answered is healthy even when it refused some records."""
    endpoint = settled[0].claimed.subscription_id
    subscription = await session.get(Subscription, endpoint, with_for_update=ENDPOINT_LOCK)
    if subscription is None:
        return Settlement()
    rows = []
    for item in settled:
        failed = item.verdict is not Verdict.DELIVERED
        outcome = replace(request, error=item.error, excerpt=request.excerpt if failed else None)
        rows.append(_attempt_row(item.claimed, outcome, item.verdict))
    await insert_rows(session, attempts, rows)
    config = settings.webhooks
    wait = retry_after_s(request.retry_after, now) if request.retry_after else None
    spent = rejected = 0
    for item in settled:
        values: dict[str, Any] = {"last_status": request.status, "last_error": item.error}
        if item.verdict is Verdict.DELIVERED:
            values.update(status=DELIVERED, delivered_at=now)
        elif item.verdict is Verdict.REJECTED:
            values.update(status=EXHAUSTED, due_at=now)
            rejected += 1
        else:
            due = next_due(
                item.claimed.attempts + 1,
                now,
                schedule=config.retry_schedule_s,
                jitter=config.jitter,
                rand=rand(),
                retry_after=wait,
                max_retry_after=config.max_retry_after_s,
            )
            values.update(status=PENDING if due else EXHAUSTED, due_at=due or now)
            spent += int(due is None)
        await _update_message(session, item.claimed, **values)
    given_up = Settlement(retries_spent=spent, rejected=rejected)
    if request.verdict is Verdict.DELIVERED:
        if subscription.paused_until is not None and subscription.paused_until > now:
            return given_up  # sent before a rate limit's pause: the pause (Retry-After) stands
        await _recovered(session, subscription, now)
        return given_up
    policy = policy_of(settings)
    health = breaker.after_failure(
        _health_of(subscription),
        now,
        policy,
        retry_after=min(wait, config.max_retry_after_s)
        if wait is not None and request.verdict is Verdict.SLOW_DOWN
        else None,
    )
    _apply_health(subscription, health, now)
    if not subscription.enabled or not breaker.should_disable(health, now, policy):
        return given_up
    detail = f"no successful delivery since {health.failing_since}"
    await _disable(session, subscription, "failing", detail, settings=settings, now=now)
    return replace(given_up, disabled=True)


async def _delivered(
    session: AsyncSession,
    claimed: Claimed,
    outcome: Outcome,
    subscription: Subscription,
    now: datetime,
) -> None:
    await _update_message(
        session,
        claimed,
        status=DELIVERED,
        delivered_at=now,
        last_status=outcome.status,
        last_error=None,
    )
    await _recovered(session, subscription, now)


async def _recovered(session: AsyncSession, subscription: Subscription, now: datetime) -> None:
    if subscription.consecutive_failures or subscription.paused_until:
        # The endpoint is back: its backlog goes now rather than at each message's next retry.
        await session.execute(
            update(messages)
            .where(
                and_(
                    messages.c.subscription_id == subscription.id,
                    messages.c.status == PENDING_LITERAL,
                    messages.c.due_at > now,
                )
            )
            .values(due_at=now)
        )
    if _health_of(subscription) != breaker.after_success():
        _apply_health(subscription, breaker.after_success(), now)  # else no write at all


async def _failed(
    session: AsyncSession,
    claimed: Claimed,
    outcome: Outcome,
    subscription: Subscription,
    *,
    settings: WebhooksConfig,
    now: datetime,
    rand: float,
) -> Settlement:
    config = settings.webhooks
    wait = retry_after_s(outcome.retry_after, now) if outcome.verdict is Verdict.SLOW_DOWN else None
    if wait is not None:
        wait = min(wait, config.max_retry_after_s)
    due = next_due(
        claimed.attempts + 1,
        now,
        schedule=config.retry_schedule_s,
        jitter=config.jitter,
        rand=rand,
        retry_after=wait,
        max_retry_after=config.max_retry_after_s,
    )
    await _update_message(
        session,
        claimed,
        status=PENDING if due else EXHAUSTED,
        due_at=due or now,
        last_status=outcome.status,
        last_error=(outcome.error or f"HTTP {outcome.status}")[:500],
    )
    given_up = Settlement(retries_spent=int(due is None))
    policy = policy_of(settings)
    health = breaker.after_failure(_health_of(subscription), now, policy, retry_after=wait)
    _apply_health(subscription, health, now)
    if not subscription.enabled:
        return given_up  # disabled meanwhile (another attempt's answer, or an operator)
    if outcome.verdict is Verdict.GONE:
        reason, detail = "gone", "the endpoint answered 410 Gone"
    elif breaker.should_disable(health, now, policy):
        reason, detail = "failing", f"no successful delivery since {health.failing_since}"
    else:
        return given_up
    await _disable(session, subscription, reason, detail, settings=settings, now=now)
    return replace(given_up, disabled=True)


def policy_of(settings: WebhooksConfig) -> breaker.Policy:
    config = settings.webhooks
    return breaker.Policy(
        threshold=config.breaker_failures,
        cooldown=timedelta(seconds=config.breaker_cooldown_s),
        disable_after=timedelta(hours=config.disable_after_hours),
    )


async def _disable(
    session: AsyncSession,
    subscription: Subscription,
    reason: str,
    detail: str,
    *,
    settings: WebhooksConfig,
    now: datetime,
) -> None:
    subscription.enabled = False
    subscription.disabled_reason = f"{reason}: {detail}"[:200]
    event = SubscriptionDisabled(
        source=SOURCE,
        subject=str(subscription.id),
        time=now,
        data=SubscriptionDisabledData(
            subscription_id=subscription.id, url=subscription.url, reason=reason, detail=detail
        ),
    )
    await stage(session, settings, event)


async def _update_message(session: AsyncSession, claimed: Claimed, **values: Any) -> None:
    await session.execute(
        update(messages)
        .where(messages.c.seq == claimed.seq)
        .values(attempts=messages.c.attempts + 1, locked_until=None, **values)
    )


def _health_of(subscription: Subscription) -> breaker.Health:
    return breaker.Health(
        consecutive_failures=subscription.consecutive_failures,
        failing_since=subscription.failing_since,
        paused_until=subscription.paused_until,
    )


def _apply_health(subscription: Subscription, health: breaker.Health, now: datetime) -> None:
    subscription.consecutive_failures = health.consecutive_failures
    subscription.failing_since = health.failing_since
    subscription.paused_until = health.paused_until
    subscription.updated_at = now


def _attempt_row(claimed: Claimed, outcome: Outcome, verdict: Verdict) -> dict[str, Any]:
    return {
        "id": new_id(),
        "message_seq": claimed.seq,
        "subscription_id": claimed.subscription_id,
        "lead_id": claimed.lead_id,
        "event_type": claimed.event_type,
        "attempted_at": outcome.attempted_at,
        "status_code": outcome.status,
        "latency_ms": round(outcome.latency_ms, 3),
        "outcome": verdict.value,
        "error": outcome.error[:500] if outcome.error else None,
        "response_excerpt": outcome.excerpt,
    }
