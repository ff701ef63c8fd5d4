"""An outcome a CRM integration heard (a HubSpot property change), recorded like a posted one.

The webhook service's CRM inbound route calls this through the composition root
(services/api.py): the same checks, the same ``lead.outcome`` event, and the same deduplication
by the CRM's event id (``external_id``), so a webhook HubSpot delivers twice records once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from services.intake.engagement.schemas import OutcomeIn
from services.intake.engagement.store import ReplayedOutcome, Retry, record_outcome
from shared.runtime import Runtime


async def record_crm_outcome(
    runtime: Runtime,
    *,
    lead_id: UUID,
    outcome: str,
    reason: str | None,
    occurred_at: datetime,
    crm: str,
    event_id: str,
) -> bool:
    """Record it; False when it is a repeat of an event already recorded."""
    external_id = f"{crm}:{event_id}"
    body = OutcomeIn.model_validate(
        {
            "outcome": outcome,
            "reason": reason,
            "occurred_at": occurred_at,
            "crm": crm,
            "external_id": external_id,
        }
    )
    retry = Retry(caller=crm, external_id=external_id)
    stored = await record_outcome(runtime, ("id", str(lead_id)), body, datetime.now(UTC), retry)
    return not isinstance(stored, ReplayedOutcome)
