"""Queries of the webhook service: subscriptions (create, change, rotate the secret, delete), the
delivery log, replay and erasure. Replaying puts a message back in the queue, due now, with a
fresh schedule; it keeps its ``webhook-id``, so a receiver that already has it can drop it.
Erasing a lead (``erase_copies``, a step of intake's erasure) redacts its messages and the
answers logged with their attempts. The caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks import signing, ssrf
from services.webhooks.crm.config import HubSpotConfig, SalesforceConfig
from services.webhooks.matching import QUALIFIED
from services.webhooks.models import (
    CLOUDEVENTS,
    CRM_KINDS,
    DELIVERED,
    EXHAUSTED,
    HUBSPOT,
    PENDING,
    SALESFORCE,
    WEBHOOK,
    DeliveryAttempt,
    Subscription,
    WebhookMessage,
)
from services.webhooks.schemas import (
    AttemptView,
    MessageView,
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionPatch,
    SubscriptionView,
)
from services.webhooks.settings import WebhookSettings
from shared.db import among, rowcount
from shared.ids import new_id
from shared.models import table_of
from shared.privacy import scrub_payloads
from shared.problems import Problem


async def check_target(url: str, settings: WebhookSettings) -> None:
    """Refuse, as a problem naming ``url``, a target that is malformed or not public."""
    try:
        await ssrf.check_target(url, ssrf.parse_networks(settings.allowed_networks))
    except ssrf.ForbiddenTarget as error:
        raise Problem(422, "Forbidden webhook target", f"url {error}", field="url") from None


async def create(
    session: AsyncSession, body: SubscriptionIn, *, settings: WebhookSettings, now: datetime
) -> SubscriptionCreated:
    url = crm_url(body.crm) if body.crm is not None else body.url
    assert url is not None and body.event_types is not None  # SubscriptionIn checks both
    await check_target(url, settings)
    secret = signing.new_secret()
    subscription = Subscription(
        id=new_id(),
        kind=body.kind,
        url=url,
        event_types=body.event_types,
        filter=body.filter,
        description=body.description,
        format=body.format,
        consent_flags=body.consent_flags,
        crm=body.crm.model_dump(mode="json") if body.crm is not None else None,
        credentials=body.credentials.given() if body.credentials else None,
        enabled=body.enabled,
        disabled_reason=None if body.enabled else "disabled on creation",
        secret=secret,
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return SubscriptionCreated(**view(subscription).model_dump(), secret=secret)


async def find(session: AsyncSession, subscription_id: UUID) -> Subscription:
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None:
        raise Problem(404, "Not Found", f"no subscription {subscription_id}", field="id")
    return subscription


async def all_subscriptions(session: AsyncSession) -> list[SubscriptionView]:
    rows = await session.scalars(select(Subscription).order_by(Subscription.created_at))
    return [view(s) for s in rows]


async def change(
    session: AsyncSession,
    subscription_id: UUID,
    patch: SubscriptionPatch,
    *,
    settings: WebhookSettings,
    now: datetime,
) -> SubscriptionView:
    subscription = await find(session, subscription_id)
    _check_patch(subscription, patch)
    if patch.url is not None:
        await check_target(patch.url, settings)
        subscription.url = patch.url
    crm = patch.hubspot or patch.salesforce
    if crm is not None:
        await check_target(crm_url(crm), settings)
        subscription.url = crm_url(crm)
        subscription.crm = crm.model_dump(mode="json")
    if patch.credentials is not None:
        subscription.credentials = {**(subscription.credentials or {}), **patch.credentials.given()}
    if "consent_flags" in patch.model_fields_set:
        subscription.consent_flags = patch.consent_flags
    if patch.event_types is not None:
        subscription.event_types = patch.event_types
    if patch.filter is not None:
        subscription.filter = patch.filter or None
    if patch.description is not None:
        subscription.description = patch.description
    if patch.format is not None:
        subscription.format = patch.format
    if patch.enabled is True:
        subscription.enabled, subscription.disabled_reason = True, None
        subscription.consecutive_failures = 0
        subscription.failing_since = subscription.paused_until = None
    elif patch.enabled is False:
        subscription.enabled, subscription.disabled_reason = False, "disabled by an operator"
    subscription.updated_at = now
    await session.flush()
    return view(subscription)


async def rotate_secret(
    session: AsyncSession, subscription_id: UUID, *, settings: WebhookSettings, now: datetime
) -> SecretRotated:
    """A new secret signs from now; the old one also signs during the overlap."""
    subscription = await find(session, subscription_id)
    until = now + timedelta(hours=settings.rotation_overlap_hours)
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_until = until
    subscription.secret = signing.new_secret()
    subscription.updated_at = now
    await session.flush()
    return SecretRotated(secret=subscription.secret, previous_valid_until=until)


async def remove(session: AsyncSession, subscription_id: UUID) -> None:
    await find(session, subscription_id)
    await session.execute(delete(Subscription).where(Subscription.id == subscription_id))


def _check_patch(subscription: Subscription, patch: SubscriptionPatch) -> None:
    """A patch that does not fit the subscription's kind is refused whole (nothing applied)."""
    kind = subscription.kind
    for name in ("hubspot", "salesforce"):
        if getattr(patch, name) is not None and kind != name:
            raise Problem(422, "Unprocessable Content", f"not a {name} subscription", field=name)
    if kind == WEBHOOK:
        if patch.credentials is not None:
            raise Problem(422, "Unprocessable Content", "a webhook has no credentials",
                          field="credentials")  # fmt: skip
        return
    if patch.url is not None:
        raise Problem(422, "Unprocessable Content", f"a {kind} subscription's url comes from "
                      f"its settings", field="url")  # fmt: skip
    if patch.event_types not in (None, [QUALIFIED]):
        raise Problem(422, "Unprocessable Content", f"a {kind} subscription takes {QUALIFIED} "
                      "only", field="event_types")  # fmt: skip
    if patch.format not in (None, CLOUDEVENTS):
        raise Problem(422, "Unprocessable Content", f"not for a {kind} subscription",
                      field="format")  # fmt: skip


def crm_url(config: HubSpotConfig | SalesforceConfig) -> str:
    """Where a CRM subscription sends: HubSpot's API, or the Salesforce org's My Domain."""
    return config.base_url if isinstance(config, HubSpotConfig) else config.login_url


def view(subscription: Subscription) -> SubscriptionView:
    kind = subscription.kind
    crm = subscription.crm if kind in CRM_KINDS else None
    return SubscriptionView(
        id=subscription.id,
        kind=kind,
        hubspot=HubSpotConfig.model_validate(crm) if kind == HUBSPOT and crm else None,
        salesforce=SalesforceConfig.model_validate(crm) if kind == SALESFORCE and crm else None,
        credentials=sorted(subscription.credentials or {}),
        inbound_path=f"/v1/crm/hubspot/{subscription.id}/events" if kind == HUBSPOT else None,
        consent_flags=subscription.consent_flags,
        url=subscription.url,
        event_types=list(subscription.event_types),
        filter=subscription.filter,
        description=subscription.description,
        format=subscription.format,
        enabled=subscription.enabled,
        disabled_reason=subscription.disabled_reason,
        consecutive_failures=subscription.consecutive_failures,
        failing_since=subscription.failing_since,
        paused_until=subscription.paused_until,
        previous_secret_until=subscription.previous_secret_until,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


messages, attempts = table_of(WebhookMessage), table_of(DeliveryAttempt)


async def erase_copies(session: AsyncSession, lead_id: UUID) -> None:
    """The lead's personal data in its webhook messages and in the receivers' answers logged
    with their attempts, in the erasure's transaction."""
    key = str(lead_id)
    await scrub_payloads(session, messages, messages.c.lead_id == key)
    await session.execute(
        update(attempts).where(attempts.c.lead_id == key).values(response_excerpt=None)
    )


async def list_messages(
    session: AsyncSession,
    subscription_id: UUID,
    *,
    status: str | None = None,
    lead_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[MessageView]:
    await find(session, subscription_id)
    query = select(WebhookMessage).where(WebhookMessage.subscription_id == subscription_id)
    if status:
        query = query.where(WebhookMessage.status == status)
    if lead_id:
        query = query.where(WebhookMessage.lead_id == lead_id)
    if since:
        query = query.where(WebhookMessage.created_at >= since)
    rows = await session.scalars(query.order_by(WebhookMessage.seq.desc()).limit(limit))
    return [_message_view(m) for m in rows]


async def list_attempts(
    session: AsyncSession,
    *,
    subscription_id: UUID | None = None,
    lead_id: str | None = None,
    limit: int = 100,
) -> list[AttemptView]:
    """Newest first, for one subscription, one lead, or both."""
    if subscription_id is not None:
        await find(session, subscription_id)
    query = select(DeliveryAttempt, WebhookMessage.id).join(
        WebhookMessage, WebhookMessage.seq == DeliveryAttempt.message_seq
    )
    if subscription_id is not None:
        query = query.where(DeliveryAttempt.subscription_id == subscription_id)
    if lead_id is not None:
        query = query.where(DeliveryAttempt.lead_id == lead_id)
    query = query.order_by(DeliveryAttempt.attempted_at.desc(), DeliveryAttempt.id.desc())
    rows = await session.execute(query.limit(limit))
    return [_attempt_view(attempt, message_id) for attempt, message_id in rows]


async def replay_message(
    session: AsyncSession, subscription_id: UUID, message_id: UUID, *, now: datetime
) -> MessageView:
    message = await session.scalar(
        select(WebhookMessage).where(
            WebhookMessage.id == message_id, WebhookMessage.subscription_id == subscription_id
        )
    )
    if message is None:
        raise Problem(404, "Not Found", f"no message {message_id} here", field="message_id")
    if message.status == PENDING:
        raise Problem(409, "Conflict", "the message is still queued", field="message_id")
    await requeue(session, [message.seq], now=now)
    await session.refresh(message)
    return _message_view(message)


async def replay_candidates(
    session: AsyncSession, subscription_id: UUID, *, since: datetime, include_delivered: bool
) -> list[int]:
    """What a replay since ``since`` sends again, oldest first: exhausted messages, and the
    delivered ones too when asked."""
    await find(session, subscription_id)
    states = [EXHAUSTED, DELIVERED] if include_delivered else [EXHAUSTED]
    rows = await session.scalars(
        select(WebhookMessage.seq)
        .where(
            WebhookMessage.subscription_id == subscription_id,
            WebhookMessage.created_at >= since,
            WebhookMessage.status.in_(states),
        )
        .order_by(WebhookMessage.seq)
    )
    return list(rows)


async def requeue(session: AsyncSession, seqs: Sequence[int], *, now: datetime) -> int:
    if not seqs:
        return 0
    result = await session.execute(
        update(messages)
        .where(among(session, messages.c.seq, seqs))
        .values(status=PENDING, attempts=0, due_at=now, locked_until=None, delivered_at=None)
    )
    return rowcount(result)


def _message_view(message: WebhookMessage) -> MessageView:
    return MessageView(
        id=message.id,
        subscription_id=message.subscription_id,
        event_id=message.event_id,
        event_type=message.event_type,
        lead_id=message.lead_id,
        status=message.status,
        attempts=message.attempts,
        due_at=message.due_at,
        last_status=message.last_status,
        last_error=message.last_error,
        created_at=message.created_at,
        delivered_at=message.delivered_at,
    )


def _attempt_view(attempt: DeliveryAttempt, message_id: UUID) -> AttemptView:
    return AttemptView(
        id=attempt.id,
        message_id=message_id,
        subscription_id=attempt.subscription_id,
        lead_id=attempt.lead_id,
        event_type=attempt.event_type,
        attempted_at=attempt.attempted_at,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        outcome=attempt.outcome,
        error=attempt.error,
        response_excerpt=attempt.response_excerpt,
    )
