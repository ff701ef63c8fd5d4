"""The SLA monitor's part of a lead's handoff (``lead.qualified``): the deadline it sets for the
lead as routed, worked out as the monitor's consumer will (tracking.py): a pick-up clock for a
lead waiting in a queue, from the routing decision; a first-response clock for an owned one,
from when the owner's working hours let it start. Dry: it writes nothing and locks nothing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.clocks import Opening
from services.sla_monitor.policy import CompiledPolicies
from services.sla_monitor.store import LEAD_COLUMNS, PolicyCache
from services.sla_monitor.tracking import planned_deadline
from shared.db import among
from shared.events import HandoffOwner, HandoffQueue, HandoffRouting, HandoffSla
from shared.models import Inquiry, Lead


class Routed(Protocol):
    """What the SLA monitor needs of a lead's routing."""

    @property
    def owner(self) -> HandoffOwner | None: ...
    @property
    def queue(self) -> HandoffQueue | None: ...
    @property
    def routing(self) -> HandoffRouting | None: ...


class Deadlines:
    """Callable once per batch; keeps the compiled policy versions between batches."""

    def __init__(self, policies: PolicyCache | None = None) -> None:
        self.policies = policies or PolicyCache()

    async def __call__(
        self, session: AsyncSession, routed: Mapping[UUID, Routed], /, *, now: datetime
    ) -> dict[UUID, HandoffSla | None]:
        live = await self.policies.active(session)
        if live is None or not routed:
            return {}
        ids = sorted(routed)
        leads = await session.execute(select(*LEAD_COLUMNS).where(among(session, Lead.id, ids)))
        forms: dict[UUID, list[dict[str, Any]]] = {}
        if live[1].reads_forms:
            query = select(Inquiry.lead_id, Inquiry.submission).where(
                among(session, Inquiry.lead_id, ids)
            )
            for row in await session.execute(query.order_by(Inquiry.received_at)):
                forms.setdefault(row.lead_id, []).append(dict(row.submission or {}))
        return {
            lead.id: deadline(lead, forms.get(lead.id, []), routed[lead.id], live) for lead in leads
        }


def deadline(
    lead: Any,
    submissions: list[dict[str, Any]],
    routed: Routed,
    live: tuple[int, CompiledPolicies],
) -> HandoffSla | None:
    """The clock the monitor opens for the lead as ``routed``, as the handoff shows it. Pure."""
    decision = routed.routing
    if decision is None:
        return None
    decided = decision.decided_at
    if routed.owner is not None:
        owner = routed.owner
        started = max(decision.available_at or decided, decided)
        opening = Opening(lead.id, "first_response", started, owner.id, owner.email, owner.team,
                          lead.source)  # fmt: skip
    elif routed.queue is not None:
        opening = Opening(lead.id, "pickup", decided, team=routed.queue.team, source=lead.source)
    else:
        return None
    planned = planned_deadline(opening, lead, submissions, live)
    if planned is None:
        return None
    return HandoffSla(
        policy=planned.policy,
        clock=planned.kind,
        deadline=planned.deadline,
        target_s=planned.target_s,
    )
