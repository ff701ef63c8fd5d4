"""The way back from HubSpot: its app's webhooks (contact property changes) become outcomes.

``POST /v1/crm/hubspot/{subscription_id}/events`` is what a HubSpot app's webhook subscription
calls. No Leadflow key: the request is signed (v3: HMAC-SHA256 with the app's client secret over
method, URI, body and timestamp; a timestamp more than five minutes off is refused). Each change
the subscription's ``inbound`` map names (``lifecyclestage`` → ``salesqualifiedlead``: accepted…)
is recorded as that outcome for the lead the contact was upserted from (``crm_links``), through
intake (the composition root hands over its recorder: ``app.state.crm_outcomes``), deduplicated
by HubSpot's event id, since HubSpot delivers again what was not answered 2xx. A change of
``hubspot_owner_id`` to an owner the subscription maps from a rep's email gives the lead to that
rep (routing's ``app.state.crm_owners``; nothing happens when it is theirs already).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from services.webhooks.crm import hubspot, links
from services.webhooks.crm.config import HubSpotConfig
from services.webhooks.models import HUBSPOT, Subscription
from shared import problems
from shared.config import Settings
from shared.deps import RuntimeDep
from shared.problems import Problem

log = logging.getLogger(__name__)
MAX_BODY = 1024 * 1024

router = APIRouter(
    prefix="/v1/crm",
    tags=["crm"],
    responses=problems.documented(400, 401, 404, 413),
)


class OutcomeSink(Protocol):
    """Records an outcome for a lead; False when the CRM's event was recorded before."""

    async def __call__(
        self,
        *,
        lead_id: UUID,
        outcome: str,
        reason: str | None,
        occurred_at: datetime,
        crm: str,
        event_id: str,
    ) -> bool: ...


class OwnerSink(Protocol):
    """Gives the lead to the rep with this email; False when it is theirs already."""

    async def __call__(self, *, lead_id: UUID, owner_email: str, why: str) -> bool: ...


class InboundAnswer(BaseModel):
    received: int = Field(description="Events in the request")
    recorded: int = Field(description="Outcomes recorded")
    repeats: int = Field(description="Outcomes of events recorded before (HubSpot retried)")
    reassigned: int = Field(0, description="Leads given to the owner set in HubSpot")
    refused: int = Field(0, description="Changes intake refused (logged), e.g. a lead erased")
    unknown: int = Field(
        description="Changes of contacts Leadflow did not send, or to an owner it cannot map"
    )
    ignored: int = Field(description="Events whose property or value no rule maps")


@router.post(
    "/hubspot/{subscription_id:uuid}/events",
    response_model=InboundAnswer,
    summary="HubSpot's webhooks: contact property changes become outcomes",
)
async def hubspot_events(
    subscription_id: UUID,
    request: Request,
    runtime: RuntimeDep,
    signature: Annotated[str | None, Header(alias="X-HubSpot-Signature-v3", max_length=200)] = None,
    timestamp: Annotated[
        str | None, Header(alias="X-HubSpot-Request-Timestamp", max_length=20)
    ] = None,
) -> InboundAnswer:
    if not signature or not timestamp:  # the credential itself is missing: 401, not 422
        missing = "X-HubSpot-Signature-v3" if not signature else "X-HubSpot-Request-Timestamp"
        raise Problem(401, "Unauthorized", f"{missing} is missing", field=missing)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "Content Too Large", f"more than {MAX_BODY} bytes")
    async with runtime.sessions() as session:
        subscription = await session.get(Subscription, subscription_id)
        if subscription is None or subscription.kind != HUBSPOT:
            raise Problem(404, "Not Found", f"no HubSpot subscription {subscription_id}",
                          field="subscription_id")  # fmt: skip
        secret = (subscription.credentials or {}).get("app_secret")
        if not secret:
            detail = "the subscription has no app_secret: HubSpot's requests cannot be verified"
            raise Problem(401, "Unauthorized", detail, field="credentials.app_secret")
        now = datetime.now(UTC)
        if not any(
            hubspot.verify_v3(secret, "POST", uri, body, timestamp, signature, now)
            for uri in _uris(request, runtime.settings)
        ):
            raise Problem(401, "Unauthorized", "the signature does not match, or the timestamp "
                          "is more than 5 minutes off", field="X-HubSpot-Signature-v3")  # fmt: skip
        config = HubSpotConfig.model_validate(subscription.crm or {})
        try:
            events = hubspot.parse_events(body)
        except hubspot.InboundPayloadError as error:
            raise Problem(400, "Bad Request", f"not a HubSpot webhook batch: {error}") from None
        ignored = config.ignored_sources
        changes = hubspot.inbound_outcomes(events, config.inbound, ignored_sources=ignored)
        owners = hubspot.owner_changes(events, ignored_sources=ignored)
        owners = [c for c in owners if c.hubspot_owner_id]
        records = [c.object_id for c in changes] + [c.object_id for c in owners]
        leads = await links.leads_of(session, subscription_id, records)
    answer = InboundAnswer(received=len(events), recorded=0, repeats=0, unknown=0, ignored=0)
    sink: OutcomeSink = request.app.state.crm_outcomes
    for change in changes:
        lead = leads.get(change.object_id)
        if lead is None:
            answer.unknown += 1
            continue
        try:
            first = await sink(
                lead_id=UUID(lead),
                outcome=change.outcome,
                reason=change.reason,
                occurred_at=change.occurred_at,
                crm="hubspot",
                event_id=change.event_id,
            )
        except Problem as refused:  # this change only: the rest of the batch is still heard
            if refused.status >= 500:
                raise
            log.warning("HubSpot event %s (%s → %s) not recorded: %s", change.event_id,
                        change.property, change.value, refused.detail)  # fmt: skip
            answer.refused += 1
            continue
        answer.recorded += first
        answer.repeats += not first
    follow: OwnerSink = request.app.state.crm_owners
    reps = {hubspot_id: key for key, hubspot_id in config.owners.items() if "@" in key}
    for owner in owners:
        lead, rep = leads.get(owner.object_id), reps.get(owner.hubspot_owner_id or "")
        if lead is None or rep is None:
            answer.unknown += 1
            continue
        why = f"owner changed in HubSpot (event {owner.event_id})"
        answer.reassigned += await follow(lead_id=UUID(lead), owner_email=rep, why=why)
    answer.ignored = answer.received - len(changes) - len(owners)
    return answer


def _uris(request: Request, settings: Settings) -> list[str]:
    """The URI HubSpot signed: as configured publicly (behind a proxy), else as received."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return [f"{settings.http.public_url.rstrip('/')}{path}", str(request.url)]
