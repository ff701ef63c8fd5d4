"""Two monitors sweeping one PostgreSQL database side by side never fire a tier twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from shared.db import make_engine, make_sessions
from shared.ids import new_id
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_leads
from tests.support.sla import activate, minutes, routed, staged

CLOCKS = 300


async def test_two_monitors_share_the_due_clocks_and_fire_each_tier_once(pg: Database) -> None:
    settings = sla_config(make_settings(pg, sla={"sweep_batch": 7}))
    async with pg.sessions.begin() as session:
        await activate(session, settings, NOW)
        lead_ids = await add_leads(session, CLOCKS)
    handler = SlaHandler(settings)
    async with pg.sessions.begin() as session:
        for lead_id in lead_ids:
            await handler(routed(lead_id, new_id(), NOW), session=session, now=NOW)
    other = make_engine(settings.db)
    try:
        later = NOW + minutes(100)  # warning, breach and the reassignment of every clock
        sweepers = [
            Sweeper(pg.sessions, settings, clock=lambda: later),
            Sweeper(make_sessions(other), settings, clock=lambda: later),
        ]
        await asyncio.gather(*(s.catch_up() for s in sweepers))
    finally:
        await other.dispose()
    assert all(s.fired > 0 for s in sweepers), "both monitors took a share"
    async with pg.sessions() as session:
        fired = [e for e in await staged(session) if e.type != "sla.started"]
    per_tier = Counter((e.data.clock_id, e.data.tier) for e in fired)  # type: ignore[attr-defined]
    first_response = sum(1 for e in fired if e.data.clock == "first_response")  # type: ignore[attr-defined]
    assert first_response == 3 * CLOCKS
    assert max(per_tier.values()) == 1
    assert sum(s.fired for s in sweepers) == len(fired)
