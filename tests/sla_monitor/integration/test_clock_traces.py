"""With tracing on, a clock keeps the trace of the event that started it, and the tiers the sweep
fires later are created in that trace (both databases; spans exported to a real OTLP receiver)."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.models import SlaClock
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from shared import tracing
from shared.ids import new_id
from tests.support.common import Database, make_settings
from tests.support.otlp import exporting
from tests.support.routing import NOW, add_lead
from tests.support.sla import activate, minutes, routed, staged


async def test_tiers_fired_later_join_the_trace_of_the_event_that_started_the_clock(
    db: Database,
) -> None:
    settings = sla_config(make_settings(db))
    async with db.sessions.begin() as session:
        await activate(session, settings, NOW)
        lead_id = await add_lead(session)
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{span_id}-01"
    event = routed(lead_id, new_id(), NOW).model_copy(update={"traceparent": traceparent})
    with exporting() as otlp:
        with tracing.consuming("t.sla-monitor", settings.topics) as spans:
            async with db.sessions.begin() as session:
                spans.start([event])
                await SlaHandler(settings)(event, session=session, now=NOW)
        [process] = [s for s in otlp.trace(trace_id) if s.kind == "CONSUMER"]
        async with db.sessions() as session:
            clocks = list(
                await session.scalars(select(SlaClock).where(SlaClock.lead_id == lead_id))
            )
        kept = {
            (c.traceparent or "").split("-")[1:3] == [trace_id, process.span_id] for c in clocks
        }
        assert clocks and kept == {True}

        # Later, in the sweep's own task: no batch, no current span.
        await Sweeper(db.sessions, settings, clock=lambda: NOW + minutes(30)).catch_up()
        async with db.sessions() as session:
            [warning] = [
                e for e in await staged(session, lead_id=lead_id) if e.type == "sla.warning"
            ]
        [create] = [
            s
            for s in otlp.trace(trace_id)
            if s.kind == "PRODUCER" and s.attributes["cloudevents.event_type"] == "sla.warning"
        ]
    assert create.parent_id == process.span_id
    assert warning.traceparent is not None
    assert warning.traceparent.split("-")[1:3] == [trace_id, create.span_id]


async def test_off_a_clock_keeps_no_trace(db: Database) -> None:
    settings = sla_config(make_settings(db))
    async with db.sessions.begin() as session:
        await activate(session, settings, NOW)
        lead_id = await add_lead(session)
    assert not tracing.active
    async with db.sessions.begin() as session:
        await SlaHandler(settings)(routed(lead_id, new_id(), NOW), session=session, now=NOW)
    await Sweeper(db.sessions, settings, clock=lambda: NOW + minutes(30)).catch_up()
    async with db.sessions() as session:
        clocks = list(await session.scalars(select(SlaClock).where(SlaClock.lead_id == lead_id)))
        events = await staged(session, lead_id=lead_id)
    assert clocks and all(c.traceparent is None for c in clocks)
    assert "sla.warning" in {e.type for e in events}
    assert all(e.traceparent is None for e in events)
