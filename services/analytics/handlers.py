"""The analytics consumer's handler, on the intake and lifecycle topics: each event of a batch
that the funnel reads is kept as a fact, and merged into its lead's line (or the line folded
again from all the lead's facts where merging cannot tell), in the consumer's transaction
(which also records the events as processed). Never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import store
from services.analytics.facts import APPLIED, fact_of
from services.analytics.settings import AnalyticsConfig
from shared.events import CloudEvent, LeadReceived


class Origins(Protocol):
    """Where inquiries came from (intake: services/intake/analytics.py), for a batch of them."""

    async def __call__(
        self, session: AsyncSession, inquiry_ids: Sequence[UUID], /
    ) -> Mapping[UUID, Mapping[str, Any]]: ...


class AnalyticsHandler:
    handles = APPLIED

    def __init__(self, settings: AnalyticsConfig, origins: Origins) -> None:
        self.definitions = settings.analytics.definitions
        self.origins = origins

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[CloudEvent], *, session: AsyncSession, now: datetime
    ) -> None:
        inquiries = [e.data.inquiry_id for e in events if isinstance(e, LeadReceived)]
        origins = await self.origins(session, inquiries) if inquiries else {}
        facts = [fact for event in events if (fact := fact_of(event, origins)) is not None]
        if not facts:
            return
        await store.add_facts(session, facts)
        await store.apply(session, facts, self.definitions)
