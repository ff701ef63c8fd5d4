"""The SLA counters the breach-rate alert divides (both databases, an injected clock): each clock
started counts under its kind, each breach once, under ``step="breach"``, apart from warnings and
escalations."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from prometheus_client import REGISTRY
from sqlalchemy import update

from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from shared.ids import new_id
from shared.models import Lead
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_lead
from tests.support.sla import activate, minutes, queued, routed

ANA = new_id()
KINDS = ("pickup", "first_response", "acceptance")
STEPS = ("warning", "breach", "escalate")


def _started() -> dict[str, float]:
    name = "leadflow_sla_clocks_started_total"
    return {k: REGISTRY.get_sample_value(name, {"clock": k}) or 0.0 for k in KINDS}


def _fired() -> dict[str, float]:
    name = "leadflow_sla_tiers_fired_total"
    return {s: REGISTRY.get_sample_value(name, {"step": s}) or 0.0 for s in STEPS}


def _moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before[key] for key in before}


async def _lead(db: Database, stage: str) -> UUID:
    async with db.sessions.begin() as session:
        lead_id = await add_lead(session)
        await session.execute(update(Lead).where(Lead.id == lead_id).values(stage=stage))
    return lead_id


async def test_clocks_started_count_by_kind_and_breaches_apart_from_other_tiers(
    db: Database,
) -> None:
    settings = sla_config(make_settings(db))
    async with db.sessions.begin() as session:
        await activate(session, settings, NOW)
    now = NOW
    handler = SlaHandler(settings)
    sweeper = Sweeper(db.sessions, settings, clock=lambda: now)

    async def at(when: datetime) -> None:
        nonlocal now
        now = when
        await sweeper.catch_up()

    started, fired = _started(), _fired()
    sql, mql = await _lead(db, "sql"), await _lead(db, "mql")
    for event in (queued(mql, NOW), routed(sql, ANA, NOW), routed(mql, ANA, NOW + minutes(5))):
        async with db.sessions.begin() as session:
            await handler(event, session=session, now=NOW)
    # The queued MQL's pick-up clock, met when it is routed; each routed lead's first response,
    # and the MQL's acceptance.
    assert _moved(started, _started()) == {"pickup": 1, "first_response": 2, "acceptance": 1}
    await at(NOW + minutes(30))  # the SQL's first response: half its hour gone
    assert _moved(fired, _fired()) == {"warning": 1, "breach": 0, "escalate": 0}
    await at(NOW + minutes(61))  # its deadline passed: a breach; the MQL's still 4 min away
    assert _moved(fired, _fired()) == {"warning": 2, "breach": 1, "escalate": 0}
