"""Routing in the database (SQLite and PostgreSQL): decisions, the why, events, reassignment."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import select, update

from services.routing import store
from services.routing.assign import (
    LeadNotFound,
    RoutingDecision,
    reassign_lead,
    route_lead,
    route_leads,
)
from services.routing.explain import routing_explanation
from services.routing.handlers import after_scoring, on_sla_escalated
from services.routing.main import sweep_queue
from services.routing.models import Rep
from services.routing.pending import route_pending
from services.routing.store import forget_cached_directories
from shared.config import Settings
from shared.events import LeadOutcome, LeadOutcomeData
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
