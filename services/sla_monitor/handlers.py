"""The SLA monitor's consumer of lifecycle and engagement events (what each does to a lead's
clocks: tracking.py). A batch is applied at once: its leads, their open clocks (locked) and the
live policies read in a few queries, the new clocks inserted (one statement) and the events
staged in one go, in the consumer's transaction (deduplicated by event id there). Never commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor import store
from services.sla_monitor.metrics import CLOCKS_STARTED
from services.sla_monitor.models import SlaClock
from services.sla_monitor.settings import sla_config
from services.sla_monitor.tracking import TRACKED, Tracker
from shared import tracing
from shared.config import Settings
from shared.db import insert_rows
from shared.events import CloudEvent
from shared.models import table_of
from shared.outbox import stage

CLOCKS = table_of(SlaClock)


class SlaHandler:
    handles = TRACKED

    def __init__(self, settings: Settings, *, on_opened: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.late_after = timedelta(seconds=sla_config(settings).sla.late_after_s)
        self.policies = store.PolicyCache()
        self.on_opened = on_opened or (lambda: None)

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[CloudEvent], *, session: AsyncSession, now: datetime
    ) -> None:
        tracked = [e for e in events if isinstance(e, TRACKED)]
        lead_ids: list[UUID] = sorted({e.data.lead_id for e in tracked})
        if not lead_ids:
            return
        live = await self.policies.active(session)
        forms = live is not None and live[1].reads_forms
        leads = await store.tracking_state(session, lead_ids, with_submissions=forms)
        tracker = Tracker(leads, live, now, late_after=self.late_after)
        for event in tracked:
            tracker.apply(event)
        if tracing.active:  # the trace its tiers join when the sweep fires them, later
            for clock in tracker.opened:
                clock.traceparent = tracing.traceparent_for(str(clock.lead_id))
        session.add_all(tracker.touched)
        for used in tracker.used:
            await session.delete(used)
        if tracker.opened:
            # The clocks this batch closed are written first: a lead's clock of the same kind
            # that opened after one closed must not meet it open (one open clock per lead and
            # kind).
            await session.flush()
            await insert_rows(session, CLOCKS, [clock.row() for clock in tracker.opened])
        await stage(session, self.settings, *tracker.events)
        for clock in tracker.opened:
            CLOCKS_STARTED.labels(clock.kind).inc()
        if tracker.opened:
            self.on_opened()
