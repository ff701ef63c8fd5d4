"""Routing in the database (SQLite and PostgreSQL): decisions, the why, events, reassignment."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, update

from services.routing import store
from services.routing.assign import LeadNotFound, RoutingDecision, route_lead, route_leads
from services.routing.explain import routing_explanation
from services.routing.handlers import RoutingHandler, after_scoring, on_sla_escalated
from services.routing.main import sweep_queue
from services.routing.models import Rep
from services.routing.pending import route_pending
from services.routing.reassign import reassign_lead
from services.routing.store import forget_cached_directories
from shared.config import Settings
from shared.events import LeadOutcome, LeadOutcomeData, SlaEscalated, SlaEscalatedData
from shared.models import Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, account, activate_rules, add_lead, rep, team

RULES = """
name: test
default_queue: triage
rules:
  - id: dach
    when: lead.country in ["DE", "AT", "CH"]
    team: dach
    match: [language]
"""


async def directory(db: Database) -> None:
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await team(s, "triage")
        await team(s, "inside")
        await team(s, "dach")
        await rep(s, "ann@co.com", "inside")
        await rep(s, "bob@co.com", "inside", weight=2)
        await rep(s, "dora@co.com", "dach", languages=["de"])
        await rep(s, "emil@co.com", "dach", languages=["fr"])
        await rep(s, "owner@co.com")
        await account(s, "Globex Corporation", "globex.com", "owner@co.com")
        await activate_rules(s, RULES, settings)


async def qualified(db: Database, settings: Settings, lead_id: UUID) -> RoutingDecision:
    """Scoring qualifies the lead (its transaction marks it pending), then the routing that
    follows the commit."""
    async with db.sessions.begin() as s:
        moves = [{"lead_id": lead_id, "to_stage": "mql"}]
        assert await after_scoring(s, [], moves, settings=settings, now=NOW) == []
    taken, [decision] = await route_pending(db.sessions, settings, now=NOW)
    assert taken == 1 and decision.lead_id == lead_id
    return decision


async def events(db: Database, kind: str) -> list[dict]:
    async with db.sessions() as s:
        rows = await s.scalars(select(OutboxMessage.payload).where(OutboxMessage.type == kind))
        return [json.loads(p) for p in rows]


async def test_a_lead_matching_a_rule_goes_to_a_rep_who_fits_with_the_why_kept(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        lead_id = await add_lead(s, country="DE", language="de")
        decision = await route_lead(s, lead_id, now=NOW, settings=settings)
    assert decision.outcome == "routed" and decision.rule == "dach" and decision.team == "dach"
    async with db.sessions() as s:
        lead = (await s.execute(select(Lead).where(Lead.id == lead_id))).scalar_one()
        dora = await s.scalar(select(Rep.id).where(Rep.email == "dora@co.com"))
        explained = await routing_explanation(s, lead_id)
    assert lead.owner_id == dora and lead.routing_status == "routed" and lead.is_expansion is False
    [why] = explained
    assert why["rule"] == "dach" and why["outcome"] == "routed"
    reasons = {c["name"]: (c["status"], c.get("reason")) for c in why["candidates"]}
    assert reasons == {"Dora": ("chosen", None), "Emil": ("skipped", "language")}
    [event] = await events(db, "lead.routed")
    assert event["subject"] == str(lead_id) and event["data"]["owner_email"] == "dora@co.com"
    assert {c["name"] for c in event["data"]["candidates"]} == {"Dora", "Emil"}


async def test_an_expansion_lead_goes_to_the_account_owner_by_domain_or_fuzzy_name(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        by_domain = await add_lead(s, email="cfo@globex.com", company="Somebody")
        by_name = await add_lead(s, company="GLOBEX Corp.")
        net_new = await add_lead(s, company="Globex Robotics Unlimited")
        results = [
            await route_lead(s, i, now=NOW, settings=settings)
            for i in (by_domain, by_name, net_new)
        ]
    assert [r.rule for r in results] == ["account_match", "account_match", "default_queue"]
    assert [r.is_expansion for r in results] == [True, True, False]
    assert results[2].outcome == "queued"  # triage has nobody: it waits, with an event
    [queued] = await events(db, "lead.queued")
    assert queued["data"]["team"] == "triage" and "nobody eligible" in queued["data"]["reason"]


async def test_routing_twice_changes_nothing_and_reassignment_excludes_past_owners(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await activate_rules(
            s, "name: t\ndefault_queue: inside\nreassignment: {max_per_lead: 1}\n", settings
        )
        lead_id = await add_lead(s)
        first = await route_lead(s, lead_id, now=NOW, settings=settings)
        again = await route_lead(s, lead_id, now=NOW, settings=settings)
    assert first.outcome == "routed" and again.outcome == "unchanged"
    async with db.sessions.begin() as s:
        moved = await reassign_lead(
            s, lead_id, now=NOW, settings=settings, trigger="rejected", why="not_my_territory"
        )
        assert moved.outcome == "routed" and moved.owner_id != first.owner_id
        stuck = await reassign_lead(
            s, lead_id, now=NOW, settings=settings, trigger="requested", why="x"
        )
    assert stuck.outcome == "queued" and stuck.rule == "reassignment_limit"
    async with db.sessions() as s:
        loads = dict((await s.execute(select(Rep.email, Rep.open_leads))).all())
        history = await routing_explanation(s, lead_id)
    assert loads["ann@co.com"] == 0 and loads["bob@co.com"] == 0
    assert [h["trigger"] for h in history] == ["qualified", "rejected", "requested"]
    assert history[1]["previous_owner_id"] == str(first.owner_id)
    assert len(await events(db, "lead.reassigned")) == 2


async def test_away_deactivated_and_capacity_are_skipped_and_nobody_left_means_queued(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        await rep(s, "ann@co.com", "inside", away_until=NOW + timedelta(days=3))
        await rep(s, "bob@co.com", "inside", max_open=1)
        await rep(s, "cy@co.com", "inside", status="deactivated")
        first, second = await add_lead(s), await add_lead(s)
    forget_cached_directories()
    async with db.sessions.begin() as s:
        one = await route_lead(s, first, now=NOW, settings=settings)
        two = await route_lead(s, second, now=NOW, settings=settings)
    assert one.outcome == "routed" and two.outcome == "queued"
    assert {c["name"]: c.get("reason") for c in two.candidates} == {
        "Ann": "away",
        "Bob": "at_capacity",
        "Cy": "deactivated",
    }


async def test_without_a_team_routing_is_off_and_leaves_leads_as_they_are(db: Database):
    settings = make_settings(db)
    forget_cached_directories()
    async with db.sessions.begin() as s:
        leads = [await add_lead(s) for _ in range(3)]
        decisions = await route_leads(s, leads, now=NOW, settings=settings)
    assert [(d.lead_id, d.outcome, d.owner_id) for d in decisions] == [
        (lead, "unchanged", None) for lead in leads
    ]
    async with db.sessions() as s:
        statuses = set(await s.scalars(select(Lead.routing_status).where(Lead.id.in_(leads))))
    assert statuses == {None} and await events(db, "lead.queued") == []
    async with db.sessions.begin() as s:
        with pytest.raises(LeadNotFound):
            await route_leads(s, [uuid4()], now=NOW, settings=settings)


async def test_a_batch_is_routed_in_one_go_with_the_weights_and_once_per_lead(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        leads = [await add_lead(s) for _ in range(6)]
        decisions = await route_leads(s, [*leads, leads[0]], now=NOW, settings=settings)
    assert [d.outcome for d in decisions] == ["routed"] * 6 + ["unchanged"]
    async with db.sessions() as s:
        owners = dict((await s.execute(select(Rep.email, Rep.open_leads))).all())
    routed = await events(db, "lead.routed")
    assert owners["ann@co.com"] == 2 and owners["bob@co.com"] == 4
    assert sorted(e["subject"] for e in routed) == sorted(map(str, leads))


async def test_the_queue_sweep_routes_a_waiting_lead_once_someone_is_back(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        for email in ("ann@co.com", "bob@co.com"):
            await store.set_availability(s, email, NOW, away_until=NOW + timedelta(days=1))
        lead_id = await add_lead(s)
        assert (await route_lead(s, lead_id, now=NOW, settings=settings)).outcome == "queued"
    runtime = Runtime.create(settings)
    try:
        assert await sweep_queue(runtime, now=NOW) == 0  # still nobody: no new event
        assert len(await events(db, "lead.queued")) == 1
        async with db.sessions.begin() as s:
            await store.set_availability(s, "bob@co.com", NOW, back=True)
        assert await sweep_queue(runtime, now=NOW + timedelta(hours=1)) == 1
    finally:
        await runtime.close()
    [routed] = await events(db, "lead.routed")
    assert routed["data"]["owner_email"] == "bob@co.com" and routed["data"]["trigger"] == "queue"


async def test_a_wrong_owner_rejection_and_an_sla_escalation_reassign_a_stale_one_does_not(
    db: Database,
):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await rep(s, "cy@co.com", "inside")
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        lead_id = await add_lead(s)
    first = await qualified(db, settings, lead_id)
    rejected = LeadOutcome.about_lead(
        lead_id,
        LeadOutcomeData(lead_id=lead_id, outcome="rejected", occurred_at=NOW, reason="not_mine"),
        source="/test",
        time=NOW,
    )
    not_a_fit = LeadOutcome.about_lead(
        lead_id,
        LeadOutcomeData(lead_id=lead_id, outcome="rejected", occurred_at=NOW, reason="no_budget"),
        source="/test",
        time=NOW,
    )
    async with db.sessions.begin() as s:
        assert await after_scoring(s, [not_a_fit], [], settings=settings, now=NOW) == []
        [second] = await after_scoring(s, [rejected], [], settings=settings, now=NOW)
        stale = await on_sla_escalated(
            s, lead_id, owner_id=first.owner_id, reason="breached", now=NOW, settings=settings
        )
        third = await on_sla_escalated(
            s, lead_id, owner_id=second.owner_id, reason="breached", now=NOW, settings=settings
        )
    assert len({first.owner_id, second.owner_id, third.owner_id}) == 3
    assert stale.outcome == "unchanged"
    async with db.sessions() as s:
        history = await routing_explanation(s, lead_id)
    assert [h["trigger"] for h in history] == ["qualified", "rejected", "sla_escalation"]
    assert history[1]["reason"].startswith("rejected by owner: not_mine")


async def test_an_sla_escalation_on_a_closed_lead_changes_nothing(db: Database) -> None:
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await rep(s, "cy@co.com", "inside")
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        lead_id = await add_lead(s)
    routed = await qualified(db, settings, lead_id)
    async with db.sessions.begin() as s:
        await s.execute(update(Lead).where(Lead.id == lead_id).values(stage="won"))
        escalated = await on_sla_escalated(
            s, lead_id, owner_id=routed.owner_id, reason="breached", now=NOW, settings=settings
        )
    assert escalated.outcome == "unchanged"
    async with db.sessions() as s:
        assert [h["trigger"] for h in await routing_explanation(s, lead_id)] == ["qualified"]


async def test_a_recycled_lead_is_released_and_routed_again_when_it_requalifies(db: Database):
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        lead_id = await add_lead(s)
    await qualified(db, settings, lead_id)
    async with db.sessions.begin() as s:
        await after_scoring(
            s, [], [{"lead_id": lead_id, "to_stage": "recycled"}], settings=settings, now=NOW
        )
    async with db.sessions() as s:
        assert sum((await s.execute(select(Rep.open_leads))).scalars()) == 0
    again = await qualified(db, settings, lead_id)
    assert again.outcome == "routed"
    async with db.sessions() as s:
        assert sum((await s.execute(select(Rep.open_leads))).scalars()) == 1


def escalation(lead_id: UUID, owner_id: UUID | None) -> SlaEscalated:
    data = SlaEscalatedData(lead_id=lead_id, policy="mql-1h", owner_id=owner_id)
    return SlaEscalated.about_lead(lead_id, data, source="/test", time=NOW)


async def test_the_sla_topics_escalations_are_reassigned_as_one_batch(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Two escalations, a stale one and one naming no lead, in one consumer batch: one step of
    locks for the batch; the stale one changes nothing, the unknown lead is logged."""
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await rep(s, "cy@co.com", "inside")
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        first_id, second_id = await add_lead(s), await add_lead(s)
    first = await qualified(db, settings, first_id)
    second = await qualified(db, settings, second_id)
    nobody = uuid4()
    batch = [
        escalation(first_id, first.owner_id),
        escalation(second_id, uuid4()),  # not its owner any more: stale
        escalation(nobody, None),
        escalation(second_id, second.owner_id),
    ]
    async with db.sessions.begin() as s:
        await RoutingHandler(settings).handle_batch(batch, session=s, now=NOW)
    async with db.sessions() as s:
        owners = dict((await s.execute(select(Lead.id, Lead.owner_id))).all())
        counts = dict((await s.execute(select(Rep.id, Rep.open_leads))).all())
        first_history = await routing_explanation(s, first_id)
        second_history = await routing_explanation(s, second_id)
    assert owners[first_id] not in (None, first.owner_id)
    assert owners[second_id] not in (None, second.owner_id)
    assert [h["trigger"] for h in first_history] == ["qualified", "sla_escalation"]
    assert [h["trigger"] for h in second_history] == ["qualified", "sla_escalation"]
    assert sum(counts.values()) == 2 and counts[owners[first_id]] >= 1
    assert f"names no lead {nobody}" in caplog.text


async def test_a_rejection_and_a_release_in_one_scoring_batch_keep_the_counts(db: Database):
    """A wrong-owner rejection and a lead lost, in one scoring transaction: the reassignment's
    locks and the released owner's row taken in one step; every count right afterwards."""
    await directory(db)
    settings = make_settings(db)
    async with db.sessions.begin() as s:
        await rep(s, "cy@co.com", "inside")
        await activate_rules(s, "name: t\ndefault_queue: inside\n", settings)
        rejected_id, lost_id = await add_lead(s), await add_lead(s)
    rejected = await qualified(db, settings, rejected_id)
    await qualified(db, settings, lost_id)
    outcome = LeadOutcomeData(
        lead_id=rejected_id, outcome="rejected", occurred_at=NOW, reason="not_mine"
    )
    event = LeadOutcome.about_lead(rejected_id, outcome, source="/test", time=NOW)
    async with db.sessions.begin() as s:
        await s.execute(update(Lead).where(Lead.id == lost_id).values(stage="lost"))
        moves = [{"lead_id": lost_id, "to_stage": "lost"}]
        [moved] = await after_scoring(s, [event], moves, settings=settings, now=NOW)
    assert moved.outcome == "routed" and moved.owner_id != rejected.owner_id
    async with db.sessions() as s:
        counts = {r: n for r, n in (await s.execute(select(Rep.id, Rep.open_leads))).all() if n}
        status = await s.scalar(select(Lead.routing_status).where(Lead.id == lost_id))
    assert counts == {moved.owner_id: 1} and status == "closed"
