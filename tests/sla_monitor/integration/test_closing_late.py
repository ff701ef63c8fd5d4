"""A clock met or cancelled before the sweep fired a tier that fell due while it was open (the
monitor was down, or its sweep had not come round): the tier settles as the clock closes, by the
response's or the cancellation's own time. The breach and the escalations fire (late, telling
nobody, moving nobody), warnings are passed over, tiers due after the close never fire; attainment
and the breaches list agree. On both databases, with an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import update

from services.sla_monitor import store
from services.sla_monitor.analytics import attainment_by_source
from services.sla_monitor.api import view
from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.schemas import ClockView
from services.sla_monitor.settings import sla_config
from shared.events import (
    LeadDisqualified,
    SlaBreached,
    SlaCancelled,
    SlaEscalated,
    SlaMet,
    StageChangedData,
)
from shared.ids import new_id
from shared.models import Lead
from tests.sla_monitor.integration.test_clocks import Monitor
from tests.support.common import Database, make_settings, offline_consumer
from tests.support.routing import NOW, add_lead
from tests.support.sla import activate, activity, minutes, outcome, routed, types

ANA = new_id()
SECONDS = """
name: Answered within seconds
contacts:
  manager: [manager@example.com]
policies:
  - id: fast
    first_response:
      within: 10s
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 3s, notify: [manager]}
        - {at: 100% + 20s, reassign: true}
"""
"""Tiers: 1 warning at 5 s, 2 breach at 10 s (telling the manager), 3 escalation at 13 s
(telling the manager again), 4 reassignment at 30 s."""


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


async def _monitor(db: Database, text: str | None = None) -> Monitor:
    settings = sla_config(make_settings(db))
    async with db.sessions.begin() as session:
        await activate(session, settings, NOW, **({"text": text} if text else {}))
    return Monitor(db, settings)


async def _lead(db: Database) -> UUID:
    async with db.sessions.begin() as session:
        lead_id = await add_lead(session)
        await session.execute(update(Lead).where(Lead.id == lead_id).values(stage="sql"))
    return lead_id


async def _first_response(monitor: Monitor, lead_id: UUID) -> ClockView:
    (row,) = [c for c in await monitor.clocks(lead_id) if c.kind == "first_response"]
    return view(row, monitor.now)


def _tiers(clock: ClockView) -> list[tuple[str, bool, str | None]]:
    return [(t.step, t.fired, t.passed_over) for t in clock.tiers]


def _disqualified(lead_id: UUID, at: datetime) -> LeadDisqualified:
    data = StageChangedData(lead_id=lead_id, from_stage="sql", to_stage="disqualified",
                            cause="rules")  # fmt: skip
    return LeadDisqualified.about_lead(lead_id, data, source="/tests", time=at)


async def _attainment(monitor: Monitor) -> tuple[int, int]:
    """First-response clocks decided in the day, and those met in time (the monthly review's)."""
    async with monitor.db.sessions() as session:
        found = await attainment_by_source(session, NOW - timedelta(hours=1), NOW + timedelta(1))
    return sum(a.clocks for a in found.values()), sum(a.met_in_time for a in found.values())


async def _breaches(monitor: Monitor) -> int:
    async with monitor.db.sessions() as session:
        since, until = NOW - timedelta(hours=1), NOW + timedelta(days=1)
        return len(await store.breached_between(session, since, until, limit=100))


async def test_a_response_after_the_deadline_applied_before_the_sweep_still_breaches(
    db: Database,
) -> None:
    monitor, lead_id = await _monitor(db, SECONDS), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    assert await monitor.at(NOW + seconds(4)) == 0  # then the monitor is down until 20 s
    response = outcome(lead_id, "responded", NOW + seconds(15))
    monitor.now = NOW + seconds(20)
    await monitor.feed(response)  # back: the response is applied before the sweep runs
    assert await monitor.at(NOW + seconds(20)) == 0  # nothing left for the sweep
    await monitor.at(NOW + seconds(600))

    events = await monitor.events(lead_id)
    assert types(events) == [
        "sla.started", "sla.breached", "sla.escalated", "sla.met",
    ]  # fmt: skip
    breached, escalated, met = events[1], events[2], events[3]
    assert isinstance(breached, SlaBreached) and breached.data.tier == 2
    assert breached.data.due_at == NOW + seconds(10)
    assert breached.data.late and breached.data.late_by_s == 10
    assert breached.data.notify == []  # answered already: nobody to call to action
    assert isinstance(escalated, SlaEscalated) and escalated.data.tier == 3
    assert escalated.data.due_at == NOW + seconds(13) and escalated.data.notify == []
    assert not escalated.data.reassign and escalated.data.action == "notify"
    assert isinstance(met, SlaMet) and met.data.breached
    assert met.data.responded_at == NOW + seconds(15)

    clock = await _first_response(monitor, lead_id)
    assert (clock.state, clock.closed_at) == ("met", NOW + seconds(15))
    assert clock.breached_at == NOW + seconds(10) and clock.next_due_at is None
    assert _tiers(clock) == [
        ("warning", False, "met"),  # passed over: a reminder for a lead already answered
        ("breach", True, None),
        ("escalate", True, None),
        ("escalate", False, None),  # the reassignment at 30 s: after the response, never due
    ]
    assert await _attainment(monitor) == (1, 0)  # decided, not in time
    assert await _breaches(monitor) == 1


async def test_a_response_before_the_deadline_applied_late_does_not_breach(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    monitor.now = NOW + minutes(100)  # the monitor was down from the start
    await monitor.feed(outcome(lead_id, "responded", NOW + minutes(45)))
    await monitor.at(NOW + minutes(100))
    await monitor.at(NOW + minutes(600))

    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.met", "sla.started"]  # then the follow-up's
    assert isinstance(events[1], SlaMet) and not events[1].data.breached
    clock = await _first_response(monitor, lead_id)
    assert clock.breached_at is None and clock.closed_at == NOW + minutes(45)
    assert _tiers(clock) == [
        ("warning", False, "met"),  # due at 30 min, before the response
        ("breach", False, None),
        ("escalate", False, None),
        ("escalate", False, None),
    ]
    assert await _attainment(monitor) == (1, 1)
    assert await _breaches(monitor) == 0


async def test_a_response_in_time_after_the_sweep_breached_is_counted_in_time(
    db: Database,
) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.at(NOW + minutes(61))  # the breach fires: the response is not in yet
    monitor.now = NOW + minutes(65)
    await monitor.feed(activity(lead_id, "call", NOW + minutes(59)))  # the CRM was slow
    events = await monitor.events(lead_id)
    assert types(events)[:4] == ["sla.started", "sla.warning", "sla.breached", "sla.met"]
    assert isinstance(events[3], SlaMet) and not events[3].data.breached
    clock = await _first_response(monitor, lead_id)
    assert clock.breached_at is None  # the record says what happened: answered in time
    assert await _attainment(monitor) == (1, 1)
    assert await _breaches(monitor) == 0


async def test_a_disqualification_after_the_deadline_fires_the_breach_first(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    monitor.now = NOW + minutes(200)
    await monitor.feed(_disqualified(lead_id, NOW + minutes(70)))
    assert await monitor.at(NOW + minutes(600)) == 0

    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.breached", "sla.cancelled"]
    assert isinstance(events[1], SlaBreached) and events[1].data.late_by_s == 140 * 60
    assert isinstance(events[2], SlaCancelled) and events[2].data.reason == "disqualified"
    clock = await _first_response(monitor, lead_id)
    assert (clock.state, clock.closed_at) == ("cancelled", NOW + minutes(70))
    assert _tiers(clock) == [
        ("warning", False, "cancelled"),
        ("breach", True, None),
        ("escalate", False, None),  # the reassignment at 90 min: the lead was gone by then
        ("escalate", False, None),
    ]
    assert await _attainment(monitor) == (1, 0)  # breached, then cancelled: not in time


async def test_a_disqualification_before_the_deadline_applied_after_the_breach_is_no_breach(
    db: Database,
) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.at(NOW + minutes(61))  # the breach fires: the disqualification is not in yet
    monitor.now = NOW + minutes(62)
    await monitor.feed(_disqualified(lead_id, NOW + minutes(55)))
    clock = await _first_response(monitor, lead_id)
    assert (clock.state, clock.closed_at, clock.breached_at) == (
        "cancelled", NOW + minutes(55), None,
    )  # fmt: skip
    assert await _attainment(monitor) == (0, 0)  # cancelled in time: not decided
    assert await _breaches(monitor) == 0


async def test_a_won_outcome_cancels_by_its_own_time_and_fires_what_fell_due(
    db: Database,
) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    monitor.now = NOW + minutes(300)
    await monitor.feed(outcome(lead_id, "won", NOW + minutes(95)))
    events = await monitor.events(lead_id)
    # ``won`` is not a response the policy counts: the clock is cancelled, not met.
    assert types(events) == ["sla.started", "sla.breached", "sla.escalated", "sla.cancelled"]
    assert isinstance(events[2], SlaEscalated) and not events[2].data.reassign
    assert "not reassigned" in events[2].data.reason
    clock = await _first_response(monitor, lead_id)
    assert clock.closed_at == NOW + minutes(95) and clock.closed_reason == "won"
    assert [t.fired for t in clock.tiers] == [False, True, True, False]


async def test_a_redelivered_response_changes_nothing(db: Database) -> None:
    monitor, lead_id = await _monitor(db, SECONDS), await _lead(db)
    consumer = offline_consumer(
        "sla-monitor", SlaHandler(monitor.settings), db.sessions, monitor.settings
    )
    await consumer._apply([routed(lead_id, ANA, NOW)])  # noqa: SLF001
    response = outcome(lead_id, "responded", NOW + seconds(15))
    await consumer._apply([response])  # noqa: SLF001
    before = (await monitor.events(lead_id), await _first_response(monitor, lead_id))
    await consumer._apply([response])  # noqa: SLF001  (at least once: delivered again)
    await consumer._apply([response, response])  # noqa: SLF001
    await monitor.at(NOW + seconds(600))
    after = (await monitor.events(lead_id), await _first_response(monitor, lead_id))
    assert types(before[0]) == [
        "sla.started", "sla.breached", "sla.escalated", "sla.met",
    ]  # fmt: skip
    assert [e.id for e in after[0]] == [e.id for e in before[0]]
    assert after[1] == before[1]


async def test_closing_settles_only_what_the_sweep_had_not_fired(db: Database) -> None:
    """The sweep fired the first tiers on time; the response, after the rest fell due, is applied
    before the sweep comes round again: each tier fires once, the reassignment moves nobody."""
    monitor, lead_id = await _monitor(db, SECONDS), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.at(NOW + seconds(5))
    await monitor.at(NOW + seconds(10))  # warning and breach fired on time
    monitor.now = NOW + seconds(40)
    await monitor.feed(activity(lead_id, "email", NOW + seconds(35)))
    events = await monitor.events(lead_id)
    assert types(events) == [
        "sla.started", "sla.warning", "sla.breached", "sla.escalated", "sla.escalated",
        "sla.met",
    ]  # fmt: skip
    assert [e.data.tier for e in events[1:5]] == [1, 2, 3, 4]  # type: ignore[attr-defined]
    assert not any(e.data.late for e in events[1:3])  # type: ignore[attr-defined]
    assert isinstance(events[4], SlaEscalated) and not events[4].data.reassign  # closed: no move
    clock = await _first_response(monitor, lead_id)
    assert _tiers(clock) == [
        ("warning", True, None), ("breach", True, None), ("escalate", True, None),
        ("escalate", True, None),
    ]  # fmt: skip
