"""Subscription use cases: create, change, rotate the secret, delete. The caller commits."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks import signing, ssrf
from services.webhooks.models import Subscription
from services.webhooks.schemas import (
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionPatch,
    SubscriptionView,
)
from shared.config import WebhookSettings
from shared.ids import new_id
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
    await check_target(body.url, settings)
    secret = signing.new_secret()
    subscription = Subscription(
        id=new_id(),
        url=body.url,
        event_types=body.event_types,
        filter=body.filter,
        description=body.description,
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
    if patch.url is not None:
        await check_target(patch.url, settings)
        subscription.url = patch.url
    if patch.event_types is not None:
        subscription.event_types = patch.event_types
    if patch.filter is not None:
        subscription.filter = patch.filter or None
    if patch.description is not None:
        subscription.description = patch.description
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


def view(subscription: Subscription) -> SubscriptionView:
    return SubscriptionView(
        id=subscription.id,
        url=subscription.url,
        event_types=list(subscription.event_types),
        filter=subscription.filter,
        description=subscription.description,
        enabled=subscription.enabled,
        disabled_reason=subscription.disabled_reason,
        consecutive_failures=subscription.consecutive_failures,
        failing_since=subscription.failing_since,
        paused_until=subscription.paused_until,
        previous_secret_until=subscription.previous_secret_until,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )
