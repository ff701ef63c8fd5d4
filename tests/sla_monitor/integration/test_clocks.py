"""SLA clocks on both databases, with an injected clock: start, tiers firing once each, met,
reassigned, cancelled, late after downtime, acknowledged."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, insert, select, update

from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.models import SlaClock, SlaTouch
from services.sla_monitor.settings import SlaConfig, sla_config
from services.sla_monitor.sweep import Sweeper
from shared.events import (
    CloudEvent,
    LeadDisqualified,
    SlaBreached,
    SlaEscalated,
    SlaMet,
    SlaStarted,
    StageChangedData,
)
from shared.ids import new_id
from shared.models import Inquiry, Lead
from shared.outbox import stage
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_lead
from tests.support.sla import (
    activate,
    activity,
    minutes,
    outcome,
    queued,
    reassigned,
    routed,
    staged,
    types,
)

ANA, BO = new_id(), new_id()


class Monitor:
    """The handler and a sweep on one database, at a time the test sets."""

    def __init__(self, db: Database, settings: SlaConfig) -> None:
        self.db, self.settings, self.now = db, settings, NOW
        self.handler = SlaHandler(settings)
        self.sweeper = Sweeper(db.sessions, settings, clock=lambda: self.now)

    async def feed(self, *events: CloudEvent) -> None:
        for event in events:
            async with self.db.sessions.begin() as session:
                await self.handler(event, session=session, now=self.now)

    async def at(self, when: datetime) -> int:
        self.now = when
        return await self.sweeper.catch_up()

    async def events(self, lead_id: UUID) -> list[CloudEvent]:
        async with self.db.sessions() as session:
            return await staged(session, lead_id=lead_id)

    async def clocks(self, lead_id: UUID) -> list[SlaClock]:
        async with self.db.sessions() as session:
            query = select(SlaClock).where(SlaClock.lead_id == lead_id)
            return list(await session.scalars(query.order_by(SlaClock.created_at)))


async def _monitor(db: Database, *, policies: bool = True) -> Monitor:
    settings = sla_config(make_settings(db))
    if policies:
        async with db.sessions.begin() as session:
            await activate(session, settings, NOW)
    return Monitor(db, settings)


async def _lead(db: Database, **values: object) -> UUID:
    async with db.sessions.begin() as session:
        lead_id = await add_lead(session)
        if values:
            await session.execute(update(Lead).where(Lead.id == lead_id).values(**values))
    return lead_id


async def test_routed_lead_starts_clocks_and_tells_the_owner(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW + minutes(2)))
    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.started"]
    first = next(e for e in events if e.data.clock == "first_response")  # type: ignore[attr-defined]
    assert isinstance(first, SlaStarted)
    assert first.data.notify == ["ana@example.com"] and first.data.owner_id == ANA
    assert first.data.deadline == NOW + minutes(62)
    assert first.data.system_time_s == 120  # received → routed: Leadflow's own delay
    acceptance = next(e for e in events if e.data.clock == "acceptance")  # type: ignore[attr-defined]
    assert acceptance.data.notify == []  # type: ignore[attr-defined]


async def test_each_tier_fires_once_at_its_time(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    assert await monitor.at(NOW + minutes(29)) == 0
    await monitor.at(NOW + minutes(30))
    await monitor.at(NOW + minutes(30))  # again at the same instant: nothing more
    assert types(await monitor.events(lead_id)) == ["sla.started", "sla.warning"]
    for step in (60, 61, 90, 95, 180, 500):
        await monitor.at(NOW + minutes(step))
    events = await monitor.events(lead_id)
    assert types(events) == [
        "sla.started", "sla.warning", "sla.breached", "sla.escalated", "sla.escalated",
    ]  # fmt: skip
    breached, reassign, notify = events[2], events[3], events[4]
    assert isinstance(breached, SlaBreached) and breached.data.notify == ["manager@example.com"]
    assert isinstance(reassign, SlaEscalated) and reassign.data.reassign
    assert reassign.data.action == "reassign" and reassign.data.owner_id == ANA
    assert isinstance(notify, SlaEscalated) and not notify.data.reassign
    assert notify.data.notify == ["cro@example.com"] and notify.data.action == "notify"
    assert not any(e.data.late for e in events[1:])  # type: ignore[attr-defined]
    (clock,) = await monitor.clocks(lead_id)
    assert clock.next_due_at is None and clock.breached_at == NOW + minutes(60)


async def test_response_before_the_deadline_is_met_and_nothing_else(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.feed(outcome(lead_id, "responded", NOW + minutes(20)))
    await monitor.at(NOW + minutes(600))
    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.met", "sla.started"]  # then the follow-up's
    met = events[1]
    assert isinstance(met, SlaMet) and met.data.response == "responded"
    assert met.data.working_time_s == 20 * 60 and not met.data.breached
    assert events[2].data.clock == "follow_up"  # type: ignore[attr-defined]


async def test_only_responses_the_policy_counts_meet_a_clock(db: Database) -> None:
    monitor, lead_id = await _monitor(db, policies=True), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.feed(activity(lead_id, "page_view", NOW + minutes(1)))
    await monitor.feed(activity(lead_id, "call", NOW + minutes(2), done=False))
    assert types(await monitor.events(lead_id)) == ["sla.started"]
    await monitor.feed(activity(lead_id, "call", NOW + minutes(3)))
    assert "sla.met" in types(await monitor.events(lead_id))


async def test_reassignment_stops_the_old_owners_clock_and_starts_the_new(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    await monitor.at(NOW + minutes(90))  # breached, then escalated with reassign
    await monitor.feed(reassigned(lead_id, ANA, BO, NOW + minutes(91), "bo@example.com"))
    old, new = await monitor.clocks(lead_id)
    assert (old.owner_id, old.state, old.closed_reason) == (ANA, "cancelled", "reassigned")
    assert (new.owner_id, new.state, new.started_at) == (BO, "open", NOW + minutes(91))
    await monitor.feed(outcome(lead_id, "responded", NOW + minutes(100)))
    assert types(await monitor.events(lead_id))[-4:] == [
        "sla.cancelled", "sla.started", "sla.met", "sla.started",
    ]  # fmt: skip


async def test_one_batch_closes_clocks_and_opens_their_successors(db: Database) -> None:
    """In one transaction: the clock read from the table is cancelled, a new one opens and
    closes, and a third opens, each for the same lead and kind (one may be open at a time).
    The new clocks go in as plain rows, after the closed one is written: every column kept."""
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    batch = [
        reassigned(lead_id, ANA, BO, NOW + minutes(5), "bo@example.com"),
        reassigned(lead_id, BO, ANA, NOW + minutes(6), "ana@example.com"),
    ]
    async with db.sessions.begin() as session:
        await monitor.handler.handle_batch(batch, session=session, now=NOW + minutes(6))
    first, second, third = await monitor.clocks(lead_id)
    assert [(c.owner_id, c.state, c.closed_reason) for c in (first, second, third)] == [
        (ANA, "cancelled", "reassigned"),
        (BO, "cancelled", "reassigned"),
        (ANA, "open", None),
    ]
    assert (second.started_at, second.closed_at) == (NOW + minutes(5), NOW + minutes(6))
    assert (third.kind, third.policy, third.policy_version) == ("first_response", "hot", 1)
    assert (third.owner_email, third.calendar, third.target_s) == (
        "ana@example.com",
        "always",
        3600,
    )
    assert third.deadline == NOW + minutes(66) and third.next_due_at == NOW + minutes(36)
    assert [t["step"] for t in third.tiers] == ["warning", "breach", "escalate", "escalate"]
    assert third.responses and third.next_tier == 1 and third.created_at == NOW + minutes(6)


async def test_a_monitor_stopped_across_a_deadline_fires_on_start_marked_late(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    restarted = Monitor(db, monitor.settings)  # a new process: nothing in memory
    await restarted.at(NOW + minutes(75))
    events = (await monitor.events(lead_id))[1:]
    assert types(events) == ["sla.warning", "sla.breached"]
    assert [e.data.late_by_s for e in events] == [45 * 60, 15 * 60]  # type: ignore[attr-defined]
    assert all(e.data.late for e in events)  # type: ignore[attr-defined]


async def test_acknowledgement_stops_the_notify_tiers_not_the_clock(db: Database) -> None:
    from services.sla_monitor.clocks import acknowledge

    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(routed(lead_id, ANA, NOW))
    async with db.sessions.begin() as session:
        clock = await session.scalar(select(SlaClock).where(SlaClock.lead_id == lead_id))
        assert clock is not None
        announced = acknowledge(clock, by="maria", note="", now=NOW)
        assert announced is not None
        await stage(session, monitor.settings, announced)
        assert acknowledge(clock, by="x", note="", now=NOW) is None
    await monitor.at(NOW + minutes(500))
    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.acknowledged", "sla.breached", "sla.escalated"]
    assert events[2].data.notify == [] and events[3].data.reassign  # type: ignore[attr-defined]


async def test_leaving_the_stage_cancels_every_clock(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW))
    data = StageChangedData(lead_id=lead_id, from_stage="mql", to_stage="disqualified",
                            cause="rules")  # fmt: skip
    gone = LeadDisqualified.about_lead(lead_id, data, source="/tests", time=NOW)
    await monitor.feed(gone)
    assert {(c.state, c.closed_reason) for c in await monitor.clocks(lead_id)} == {
        ("cancelled", "disqualified")
    }
    assert await monitor.at(NOW + minutes(600)) == 0


async def test_won_closes_what_is_left(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db)
    await monitor.feed(routed(lead_id, ANA, NOW), outcome(lead_id, "won", NOW + minutes(5)))
    clocks = {c.kind: (c.state, c.closed_reason) for c in await monitor.clocks(lead_id)}
    assert clocks == {"first_response": ("cancelled", "won"), "acceptance": ("cancelled", "won")}


async def test_a_queued_lead_has_a_pickup_clock_met_when_routed(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(queued(lead_id, NOW))
    await monitor.at(NOW + minutes(11))
    await monitor.feed(routed(lead_id, ANA, NOW + minutes(12)))
    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.breached", "sla.met", "sla.started"]
    assert events[1].data.notify == ["manager@example.com"]  # type: ignore[attr-defined]
    assert events[2].data.breached and events[2].data.response == "routed"  # type: ignore[attr-defined]


async def test_no_clock_without_live_policies_or_for_test_leads(db: Database) -> None:
    unsigned = await _monitor(db, policies=False)
    lead_id = await _lead(db)
    await unsigned.feed(routed(lead_id, ANA, NOW))
    assert await unsigned.clocks(lead_id) == []
    monitor, test_lead = await _monitor(db), await _lead(db, is_test=True)
    await monitor.feed(routed(test_lead, ANA, NOW))
    assert await monitor.clocks(test_lead) == []


async def test_a_lead_held_for_its_owner_starts_counting_when_they_start(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    opens = NOW + timedelta(hours=15)
    await monitor.feed(routed(lead_id, ANA, NOW, available_at=opens))
    (clock,) = await monitor.clocks(lead_id)
    assert clock.started_at == opens and clock.deadline == opens + minutes(60)
    assert clock.system_time_s == 0  # routed at once: the hold is the owner's hours, not Leadflow


async def test_system_time_is_received_to_routed_and_not_the_previous_owners(db: Database) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    async with db.sessions.begin() as session:  # a second inquiry, an hour later
        await session.execute(
            insert(Inquiry).values(id=new_id(), lead_id=lead_id, source="web",
                                   received_at=NOW + minutes(60), submission={})
        )  # fmt: skip
    await monitor.feed(routed(lead_id, ANA, NOW + minutes(61)))
    await monitor.feed(reassigned(lead_id, ANA, BO, NOW + minutes(200), "bo@example.com"))
    first, second = await monitor.clocks(lead_id)
    assert first.system_time_s == 60  # the inquiry that qualified it, a minute before routing
    assert second.system_time_s is None  # the time before it is the first owner's, not Leadflow's


async def test_the_sweep_counts_what_it_fires_and_what_is_open(db: Database) -> None:
    from services.sla_monitor.metrics import DUE_SOON, OPEN_CLOCKS, TIERS_FIRED

    monitor = await _monitor(db)
    leads = [await _lead(db, stage="sql") for _ in range(3)]
    await monitor.feed(*(routed(lead_id, ANA, NOW) for lead_id in leads))
    breaches = TIERS_FIRED.labels("breach")._value.get()  # noqa: SLF001
    await monitor.at(NOW + minutes(61))
    assert TIERS_FIRED.labels("breach")._value.get() == breaches + 3  # noqa: SLF001
    await monitor.sweeper.housekeeping()
    assert OPEN_CLOCKS._value.get() == 3  # noqa: SLF001
    assert DUE_SOON._value.get() == 0  # the reassignment is 29 minutes away  # noqa: SLF001


@pytest.mark.parametrize("one_batch", [False, True])
async def test_a_response_applied_before_its_routing_meets_the_clock_that_opens_after(
    db: Database, one_batch: bool
) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    # lead.outcome (intake topic) applied before lead.routed (lifecycle topic): no clock yet.
    early = [outcome(lead_id, "responded", NOW + minutes(3)), activity(lead_id, "page_view", NOW)]
    if one_batch:
        async with db.sessions.begin() as session:
            batch = [*early, routed(lead_id, ANA, NOW + minutes(2))]
            await monitor.handler.handle_batch(batch, session=session, now=NOW)
    else:
        await monitor.feed(*early)
        await monitor.feed(routed(lead_id, ANA, NOW + minutes(2)))
    events = await monitor.events(lead_id)
    assert types(events) == ["sla.started", "sla.met", "sla.started"]  # then the follow-up
    assert events[1].data.responded_at == NOW + minutes(3)  # type: ignore[attr-defined]
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SlaTouch)) == 0


async def test_a_response_from_before_the_routing_does_not_count_and_is_forgotten(
    db: Database,
) -> None:
    monitor, lead_id = await _monitor(db), await _lead(db, stage="sql")
    await monitor.feed(outcome(lead_id, "responded", NOW))  # an earlier owner's, say
    await monitor.feed(routed(lead_id, ANA, NOW + minutes(5)))
    assert types(await monitor.events(lead_id)) == ["sla.started"]
    await monitor.at(NOW + timedelta(days=8))
    await monitor.sweeper.housekeeping()
    async with db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SlaTouch)) == 0


async def test_a_clock_that_cannot_fire_is_put_off_and_the_others_fire(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = await _monitor(db)
    broken, fine = await _lead(db, stage="sql"), await _lead(db, stage="sql")
    await monitor.feed(routed(broken, ANA, NOW), routed(fine, BO, NOW + minutes(1)))
    async with db.sessions.begin() as session:  # a ladder nobody can read
        await session.execute(
            update(SlaClock).where(SlaClock.lead_id == broken).values(tiers=[{"index": "x"}])
        )
    await monitor.at(NOW + minutes(40))
    assert types(await monitor.events(fine)) == ["sla.started", "sla.warning"]
    assert "cannot fire" in caplog.text
    [clock] = await monitor.clocks(broken)
    assert clock.next_due_at == NOW + minutes(40) + timedelta(hours=1)
    assert clock.next_tier == 1
