"""``/v1/subscriptions``: CRM endpoints, their delivery log, replay. Secret key required."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response, status

from services.webhooks import store
from services.webhooks.crm import fields
from services.webhooks.schemas import (
    AttemptView,
    MessageView,
    Replayed,
    ReplayRequest,
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionPatch,
    SubscriptionView,
)
from services.webhooks.settings import webhooks_config
from shared import problems
from shared.auth import secret_key
from shared.deps import RuntimeDep
from shared.params import Instant

ERRORS = problems.documented(401, 403, 404, 422)


StatusQuery = Annotated[
    str | None, Query(alias="status", pattern=r"^(pending|delivered|exhausted)$")
]


router = APIRouter(
    prefix="/v1/subscriptions",
    tags=["webhooks"],
    dependencies=[Depends(secret_key)],
    responses=ERRORS,
)


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscriptionCreated,
    summary="Subscribe an endpoint",
    description="The answer shows the signing secret, once. Targets that resolve to loopback, "
    "private, link-local or metadata addresses are refused unless allowed in the settings.",
)
async def create_subscription(
    body: SubscriptionIn, response: Response, runtime: RuntimeDep
) -> SubscriptionCreated:
    async with runtime.sessions.begin() as session:
        created = await store.create(
            session, body, settings=webhooks_config(runtime.settings).webhooks, now=_now()
        )
    response.headers["Location"] = f"/v1/subscriptions/{created.id}"
    return created


@router.get(
    "/crm-fields",
    summary="The Leadflow fields a CRM mapping may name",
    description="Dotted paths into `lead.qualified`'s data, with what each holds; `<key>` stands "
    "for any key of that object (e.g. `custom.team_size`).",
)
async def crm_fields() -> dict[str, str]:
    return dict(fields.FIELDS)


@router.get("", response_model=list[SubscriptionView], summary="Every subscription")
async def list_subscriptions(runtime: RuntimeDep) -> list[SubscriptionView]:
    async with runtime.sessions() as session:
        return await store.all_subscriptions(session)


@router.get("/attempts", response_model=list[AttemptView], summary="Delivery log of a lead")
async def lead_attempts(
    runtime: RuntimeDep,
    lead_id: Annotated[str, Query(max_length=100)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AttemptView]:
    async with runtime.sessions() as session:
        return await store.list_attempts(session, lead_id=lead_id, limit=limit)


@router.get("/{subscription_id:uuid}", response_model=SubscriptionView, summary="One subscription")
async def get_subscription(subscription_id: UUID, runtime: RuntimeDep) -> SubscriptionView:
    async with runtime.sessions() as session:
        return store.view(await store.find(session, subscription_id))


@router.patch(
    "/{subscription_id:uuid}",
    response_model=SubscriptionView,
    summary="Change, disable or re-enable a subscription",
)
async def patch_subscription(
    subscription_id: UUID, patch: SubscriptionPatch, runtime: RuntimeDep
) -> SubscriptionView:
    async with runtime.sessions.begin() as session:
        return await store.change(
            session,
            subscription_id,
            patch,
            settings=webhooks_config(runtime.settings).webhooks,
            now=_now(),
        )


@router.delete(
    "/{subscription_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a subscription, its queue and its log",
)
async def delete_subscription(subscription_id: UUID, runtime: RuntimeDep) -> Response:
    async with runtime.sessions.begin() as session:
        await store.remove(session, subscription_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{subscription_id:uuid}/rotate-secret",
    response_model=SecretRotated,
    summary="New signing secret; the old one keeps signing during the overlap",
)
async def rotate_secret(subscription_id: UUID, runtime: RuntimeDep) -> SecretRotated:
    async with runtime.sessions.begin() as session:
        return await store.rotate_secret(
            session,
            subscription_id,
            settings=webhooks_config(runtime.settings).webhooks,
            now=_now(),
        )


@router.get(
    "/{subscription_id:uuid}/messages",
    response_model=list[MessageView],
    summary="Messages of a subscription, newest first",
)
async def list_messages(
    subscription_id: UUID,
    runtime: RuntimeDep,
    status_: StatusQuery = None,
    lead_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[MessageView]:
    async with runtime.sessions() as session:
        return await store.list_messages(
            session, subscription_id, status=status_, lead_id=lead_id, since=since, limit=limit
        )


@router.get(
    "/{subscription_id:uuid}/attempts",
    response_model=list[AttemptView],
    summary="Delivery log of a subscription, newest first",
)
async def subscription_attempts(
    subscription_id: UUID,
    runtime: RuntimeDep,
    lead_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AttemptView]:
    async with runtime.sessions() as session:
        return await store.list_attempts(
            session, subscription_id=subscription_id, lead_id=lead_id, limit=limit
        )


@router.post(
    "/{subscription_id:uuid}/messages/{message_id:uuid}/replay",
    response_model=MessageView,
    summary="Send one message again",
    responses={409: problems.PROBLEM},
)
async def replay_message(
    subscription_id: UUID, message_id: UUID, runtime: RuntimeDep
) -> MessageView:
    async with runtime.sessions.begin() as session:
        replayed = await store.replay_message(session, subscription_id, message_id, now=_now())
    return replayed


@router.post(
    "/{subscription_id:uuid}/replay",
    response_model=Replayed,
    summary="Send again everything exhausted (or also delivered) since a time",
)
async def replay_since(subscription_id: UUID, body: ReplayRequest, runtime: RuntimeDep) -> Replayed:
    async with runtime.sessions.begin() as session:
        seqs = await store.replay_candidates(
            session, subscription_id, since=body.since, include_delivered=body.include_delivered
        )
        count = await store.requeue(session, seqs, now=_now())
    return Replayed(replayed=count)
