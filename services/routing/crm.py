"""A CRM says the lead has another owner (a rep changed it there): Leadflow follows.

Called through the composition root by the webhook service's CRM inbound route. The lead is
reassigned to that rep (``lead.reassigned``: its SLA clocks move to them) unless it is theirs
already, which is also what makes a repeated or echoed change do nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from services.routing import store
from services.routing.assign import LeadNotFound
from services.routing.reassign import reassign_lead
from services.routing.store import DirectoryInvalid
from shared.models import Lead
from shared.problems import Problem
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def follow_crm_owner(runtime: Runtime, *, lead_id: UUID, owner_email: str, why: str) -> bool:
    """Reassign the lead to the rep with ``owner_email``; False when it is theirs already or no
    rep has that email any more (logged)."""
    async with runtime.sessions.begin() as session:
        try:
            rep = await store.rep_id_of(session, owner_email, "owner_email")
        except DirectoryInvalid:
            log.warning("the CRM gave lead %s to %s, who is no rep here; ignored", lead_id,
                        owner_email)  # fmt: skip
            return False
        current = await session.get(Lead, lead_id)
        if current is None:
            raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id")
        if current.owner_id == rep:
            return False
        try:
            await reassign_lead(
                session,
                lead_id,
                now=datetime.now(UTC),
                settings=runtime.settings,
                trigger="requested",
                why=why,
                to=rep,
            )
        except LeadNotFound:
            raise Problem(404, "Not Found", f"no lead {lead_id}", field="lead_id") from None
    runtime.notify_relay()
    return True
