"""What the handoff asks of the services that own a lead's data, each for a batch of leads in the
handoff's transaction. The composition root hands the providers in (services/processes.py); this
service never imports another, and the providers never import it: they match these types by
their shape, and speak in the event's own payload models (shared/events/handoff.py).

The order: intake, scoring and routing for the leads, then the SLA monitor with what routing
found (owner or queue, and the decision), since the deadline depends on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import (
    HandoffAttribution,
    HandoffCompany,
    HandoffConsent,
    HandoffContact,
    HandoffOwner,
    HandoffQualification,
    HandoffQueue,
    HandoffRouting,
    HandoffSla,
)


class IntakeFacts(Protocol):
    """Who the lead is and where it came from (intake: services/intake/handoff.py)."""

    @property
    def contact(self) -> HandoffContact: ...
    @property
    def company(self) -> HandoffCompany: ...
    @property
    def attribution(self) -> HandoffAttribution: ...
    @property
    def consent(self) -> HandoffConsent | None: ...
    @property
    def custom(self) -> Mapping[str, Any]: ...
    @property
    def is_test(self) -> bool: ...
    @property
    def quarantined(self) -> bool: ...
    @property
    def erased(self) -> bool: ...


class RoutingFacts(Protocol):
    """Who owns the lead, or whose queue it waits in, and the decision that put it there
    (routing: services/routing/handoff.py)."""

    @property
    def owner(self) -> HandoffOwner | None: ...
    @property
    def queue(self) -> HandoffQueue | None: ...
    @property
    def routing(self) -> HandoffRouting | None: ...
    @property
    def is_expansion(self) -> bool | None: ...
    @property
    def account_id(self) -> UUID | None: ...


class IntakePart(Protocol):
    async def __call__(
        self, session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
    ) -> Mapping[UUID, IntakeFacts]: ...


class QualificationPart(Protocol):
    """Why the lead is in its stage (scoring: services/scoring/handoff.py)."""

    async def __call__(
        self, session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
    ) -> Mapping[UUID, HandoffQualification]: ...


class RoutingPart(Protocol):
    async def __call__(
        self, session: AsyncSession, lead_ids: Sequence[UUID], /, *, now: datetime
    ) -> Mapping[UUID, RoutingFacts]: ...


class SlaPart(Protocol):
    """The deadline the SLA monitor sets for each lead as routed (services/sla_monitor/handoff.py);
    a lead left out, or None, has none. Reads only: writes and locks nothing."""

    async def __call__(
        self, session: AsyncSession, routed: Mapping[UUID, RoutingFacts], /, *, now: datetime
    ) -> Mapping[UUID, HandoffSla | None]: ...


@dataclass(frozen=True, slots=True)
class Parts:
    intake: IntakePart
    qualification: QualificationPart
    routing: RoutingPart
    sla: SlaPart | None = None
    """None: no SLA monitor in this deployment (``sla`` stays empty)."""


@dataclass(frozen=True, slots=True)
class LeadParts:
    """One lead's parts, as the providers gave them."""

    intake: IntakeFacts
    qualification: HandoffQualification
    routing: RoutingFacts
    sla: HandoffSla | None = None


async def gather(
    session: AsyncSession, parts: Parts, lead_ids: Sequence[UUID], *, now: datetime
) -> dict[UUID, LeadParts]:
    """Each lead's parts; a lead that a provider does not know (gone meanwhile) is left out."""
    intake = await parts.intake(session, lead_ids, now=now)
    qualification = await parts.qualification(session, lead_ids, now=now)
    routing = await parts.routing(session, lead_ids, now=now)
    known = [i for i in lead_ids if i in intake and i in qualification and i in routing]
    routed = {i: routing[i] for i in known}
    deadlines = await parts.sla(session, routed, now=now) if parts.sla and routed else {}
    return {i: LeadParts(intake[i], qualification[i], routing[i], deadlines.get(i)) for i in known}
