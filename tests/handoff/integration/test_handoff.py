"""``lead.qualified`` over a real database (SQLite and PostgreSQL): a lead posted through the API,
scored by the sample rules, routed to the sample team, its SLA set by a live policy; the handoff
consumer's handler applied to the real events staged on the way, with the parts the composition
root wires (services/processes.py).

The published example of the event (shared/events/examples/lead.qualified.json, in
docs/schemas/lead.qualified.json by ``make docs``) is the first handoff this test makes; it is
rewritten with ``UPDATE_GOLDEN=1 pytest tests/handoff/integration/test_handoff.py`` (then run
``make docs``), and the test fails when the event emitted no longer has the example's shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from services.handoff import store as handoff_store
from services.handoff.handlers import HandoffHandler
from services.handoff.models import LeadHandoff
from services.handoff.settings import handoff_config
from services.handoff.snapshot import SOURCE
from services.intake.handoff import lead_intake
from services.processes import handoff_parts
from services.routing import handlers as routing_hooks
from services.routing.main import add_sample_team, sweep_queue
from services.routing.models import Assignment, Rep, Team
from services.routing.pending import AfterRouting, route_pending
from services.scoring import versions
from services.scoring.handlers import ScoringHandler
from services.scoring.store import DEFAULT_RULESET
from shared.events import (
    CloudEvent,
    HandoffAttribution,
    HandoffCompany,
    HandoffConsent,
    HandoffContact,
    HandoffLinks,
    HandoffOwner,
    HandoffQualification,
    HandoffQueue,
    HandoffRouting,
    HandoffSla,
    LeadQualified,
    decode,
)
from shared.events.envelope import EXAMPLES
from shared.events.handoff import HandoffCommunication
from shared.models import Inquiry, Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.intake import AUTH, client_for, new_key
from tests.support.routing import rep
from tests.support.sla import activate, activity, outcome

PUBLIC_URL = "https://leadflow.example.com"
EXAMPLE = EXAMPLES / "lead.qualified.json"
FORM: dict[str, Any] = {
    "email": "ada@analytical-engines.co.uk",
    "phone": "+44 20 7946 0958",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines Ltd",
    "title": "VP Engineering",
    "website": "https://www.analytical-engines.co.uk",
    "country": "United Kingdom",
    "utm": {"source": "newsletter", "medium": "email", "campaign": "spring-launch"},
    "page_url": "https://www.leadflow.example/pricing",
    "referrer": "https://www.google.com/",
    "consent": {
        "text": "I agree to be contacted about Leadflow.",
        "flags": {"contact": True, "marketing": False},
        "communications": [{"value": True, "subscription_type_id": 999, "text": "Newsletter"}],
    },
    "custom": {"employees": 250, "budget": "50k"},
}
WAITING = ["sales acceptance: the CRM posts the outcome 'accepted'"]
SAMPLE_OWNERS = {"ana@example.com", "bo@example.com", "chen@example.com"}


class Flow:
    """The services' handlers on one database, each applied to what the one before staged, at a
    time the test moves on."""

    def __init__(self, db: Database, runtime: Runtime) -> None:
        self.db, self.runtime, self.settings = db, runtime, runtime.settings
        self.scoring = ScoringHandler(self.settings, after_scoring=[routing_hooks.after_scoring])
        self.handoff = HandoffHandler(handoff_config(self.settings), handoff_parts())
        self.now = datetime.now(UTC) + timedelta(seconds=1)
        self.seen = 0
        """The outbox rows read so far (``fresh``)."""

    def tick(self, minutes: float = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now

    async def post(self, body: dict[str, Any]) -> tuple[UUID, UUID]:
        key = await new_key(self.runtime)
        async with client_for(self.runtime, headers={"X-API-Key": key}) as client:
            response = await client.post("/v1/leads", json=body)
        assert response.status_code == 202, response.text
        return UUID(response.json()["lead_id"]), UUID(response.json()["inquiry_id"])

    async def fresh(self) -> list[CloudEvent]:
        """What was staged since the last call, in order."""
        async with self.db.sessions() as session:
            query = select(OutboxMessage.seq, OutboxMessage.payload).where(
                OutboxMessage.seq > self.seen
            )
            rows = (await session.execute(query.order_by(OutboxMessage.seq))).all()
        self.seen = rows[-1].seq if rows else self.seen
        return [decode(row.payload.encode()) for row in rows]

    async def score(self, *events: CloudEvent) -> list[CloudEvent]:
        async with self.db.sessions.begin() as session:
            await self.scoring.handle_batch(events, session=session, now=self.tick())
        return await self.fresh()

    async def route(self, after: AfterRouting | None = None) -> list[CloudEvent]:
        await route_pending(self.db.sessions, self.settings, now=self.tick(), after=after)
        return await self.fresh()

    async def hand_over(self, events: Sequence[CloudEvent]) -> list[LeadQualified]:
        async with self.db.sessions.begin() as session:
            await self.handoff.handle_batch(events, session=session, now=self.tick(0.5))
        staged = await self.fresh()
        assert all(isinstance(e, LeadQualified) for e in staged)
        return [e for e in staged if isinstance(e, LeadQualified)]


@pytest.fixture
async def flow(db: Database) -> AsyncIterator[Flow]:
    async for made in _flow(db):
        yield made


@pytest.fixture
async def pg_flow(pg: Database) -> AsyncIterator[Flow]:
    async for made in _flow(pg):
        yield made


async def _flow(db: Database) -> AsyncIterator[Flow]:
    runtime = Runtime.create(make_settings(db, http={"public_url": PUBLIC_URL}))
    try:
        async with runtime.sessions.begin() as session:
            text = DEFAULT_RULESET.read_text()
            await versions.bootstrap(session, runtime.settings, text, now=datetime.now(UTC))
            await activate(session, runtime.settings)  # tests/support/sla.py: 1h first response
        await add_sample_team(runtime)
        flow = Flow(db, runtime)
        await flow.fresh()  # the versions' activation events
        yield flow
    finally:
        await runtime.close()


def of_type(events: Sequence[CloudEvent], kind: str) -> list[CloudEvent]:
    return [e for e in events if e.type == kind]


async def qualified_and_routed(flow: Flow) -> tuple[UUID, UUID, list[CloudEvent]]:
    """Ada's lead posted, scored to MQL, then routed; the handoff has seen neither yet."""
    lead_id, inquiry_id = await flow.post(FORM)
    [received] = await flow.fresh()
    scored = await flow.score(received)
    assert [e.type for e in scored] == ["lead.scored", "lead.mql"]
    routed = await flow.route()
    assert [e.type for e in routed] == ["lead.routed"]
    return lead_id, inquiry_id, scored + routed


async def test_one_handoff_carries_the_whole_lead_in_either_order(flow: Flow) -> None:
    lead_id, inquiry_id = await flow.post(FORM)
    [received] = await flow.fresh()
    scored = await flow.score(received)
    [mql] = of_type(scored, "lead.mql")
    assert await flow.hand_over(scored) == []  # an MQL without an owner yet: nothing
    [routed] = await flow.route()
    [event] = await flow.hand_over([routed])
    assert await flow.hand_over([mql, routed]) == []  # redelivered: nothing new

    async with flow.db.sessions() as session:
        lead = await session.get(Lead, lead_id)
        inquiry = await session.get(Inquiry, inquiry_id)
        rep = await session.get(Rep, routed.data.owner_id)  # type: ignore[attr-defined]
        team = await session.scalar(select(Team).where(Team.name == "default"))
        decision = await session.scalar(select(Assignment).where(Assignment.lead_id == lead_id))
        remembered = await session.get(LeadHandoff, lead_id)
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.id == event.id))
    assert lead and inquiry and rep and team and decision and remembered and row
    async with client_for(flow.runtime, headers=AUTH) as client:
        explained = (await client.get(f"/v1/leads/{lead_id}/explain")).json()

    assert (event.type, event.subject, event.source) == ("lead.qualified", str(lead_id), SOURCE)
    assert event.ruleset == lead.ruleset == mql.ruleset and event.ruleset is not None
    assert (row.topic, row.aggregate_id) == (flow.settings.topics.lifecycle, str(lead_id))
    data = event.data
    assert (data.lead_id, data.handoff, data.is_test) == (lead_id, "qualified", False)
    assert data.contact == HandoffContact(
        email="ada@analytical-engines.co.uk",
        phone="+442079460958",
        first_name="Ada",
        last_name="Lovelace",
        title="VP Engineering",
    )
    assert data.company == HandoffCompany(
        name="Analytical Engines Ltd",
        domain="analytical-engines.co.uk",
        country="GB",
        size="250",
        account_id=None,
        is_expansion=False,
    )
    assert data.attribution == HandoffAttribution(
        source="web",
        inquiry_source="web",
        inquiry_id=inquiry_id,
        received_at=inquiry.received_at,
        inquiries=1,
        utm={"source": "newsletter", "medium": "email", "campaign": "spring-launch"},
        ad=None,
        landing_page="https://www.leadflow.example/pricing",
        referrer="https://www.google.com/",
    )
    assert data.consent == HandoffConsent(
        text="I agree to be contacted about Leadflow.",
        flags={"contact": True, "marketing": False},
        communications=[
            HandoffCommunication(value=True, subscription_type_id=999, text="Newsletter")
        ],
        given_at=inquiry.received_at,
    )
    assert data.custom == {"employees": 250, "budget": "50k"}
    assert data.qualification == HandoffQualification(
        stage="mql",
        cause="rules",
        reason=None,
        reached_at=mql.time,
        score=lead.score,
        fit_grade="A",
        engagement_score=15,
        rules=mql.data.rules,  # type: ignore[attr-defined]
        next_stage="sal",
        missing=WAITING,
        ruleset=lead.ruleset,
    )
    assert {"business-email", "senior-title", "mid-market"} <= set(data.qualification.rules)
    promoted_by = explained["promoted_by"]["rules"]
    assert (promoted_by, explained["next_stage"], explained["missing"]) == (
        data.qualification.rules,
        "sal",
        WAITING,
    )
    assert data.owner == HandoffOwner(
        id=rep.id, email=rep.email, name=rep.name, team_id=team.id, team="default"
    )
    assert data.queue is None and rep.email in SAMPLE_OWNERS
    assert data.routing == HandoffRouting(
        trigger="qualified",
        rule=routed.data.rule,  # type: ignore[attr-defined]
        reason=decision.reason,
        strategy="round_robin",
        ruleset_version=None,
        decided_at=decision.decided_at,
        available_at=None,
    )
    assert decision.decided_at == routed.time
    assert data.sla == HandoffSla(
        policy="hot",
        clock="first_response",
        deadline=routed.time + timedelta(hours=1),
        target_s=3600,
    )
    assert data.links == HandoffLinks(
        lead=f"{PUBLIC_URL}/v1/leads/{lead_id}",
        explanation=f"{PUBLIC_URL}/v1/leads/{lead_id}/explain",
        routing=f"{PUBLIC_URL}/v1/leads/{lead_id}/routing",
    )
    remembered_key = (remembered.stage, remembered.owner_id, remembered.team_id)
    assert (remembered_key, remembered.event_id) == (("mql", rep.id, None), event.id)

    produced = json.loads(row.payload)
    if os.environ.get("UPDATE_GOLDEN") == "1" and flow.db.kind == "postgresql":
        EXAMPLE.write_text(json.dumps(produced, indent=2, ensure_ascii=False) + "\n")
    assert key_paths(produced) == key_paths(json.loads(EXAMPLE.read_text())), (
        "lead.qualified no longer has the published example's shape: regenerate it "
        "(UPDATE_GOLDEN=1, then make docs)"
    )


async def test_routed_before_the_mql_is_applied_it_is_still_one_handoff(flow: Flow) -> None:
    lead_id, _, events = await qualified_and_routed(flow)
    [event] = await flow.hand_over(events)  # lead.scored, lead.mql, lead.routed at once
    assert event.data.handoff == "qualified" and event.data.owner is not None
    for one in events:
        assert await flow.hand_over([one]) == []


async def test_the_pending_router_hands_over_in_its_routing_transaction(flow: Flow) -> None:
    """As the scoring process wires it: the round that routes the lead stages its handoff right
    after ``lead.routed``; the consumer, given the same events later, finds nothing new."""
    lead_id, _ = await flow.post(FORM)
    [received] = await flow.fresh()
    scored = await flow.score(received)
    routed, qualified = await flow.route(after=flow.handoff.after_routing)
    assert (routed.type, qualified.type) == ("lead.routed", "lead.qualified")
    assert isinstance(qualified, LeadQualified) and qualified.subject == str(lead_id)
    owner = qualified.data.owner
    assert owner is not None and owner.id == routed.data.owner_id  # type: ignore[attr-defined]
    assert qualified.data.routing is not None and qualified.data.routing.trigger == "qualified"
    assert qualified.data.sla is not None and qualified.data.qualification.stage == "mql"
    async with flow.db.sessions() as session:
        remembered = await session.get(LeadHandoff, lead_id)
    assert remembered is not None and remembered.event_id == qualified.id
    assert await flow.hand_over([*scored, routed]) == []


async def test_a_consumer_that_read_no_handoff_before_the_router_made_one_does_not_fail(
    pg_flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consumer reads a lead's last handoff (none), then the router routes the lead and
    hands it over in its own transaction, then the consumer reads the lead (routed) and would
    hand it over too: its first handoff of the lead collides with the router's. The batch must
    not fail (a failed batch is applied again one event at a time): the handoff is done again,
    finds the router's, and stages nothing."""
    flow = pg_flow
    lead_id, _ = await flow.post(FORM)
    [received] = await flow.fresh()
    [_, mql] = await flow.score(received)
    read_lead_states = handoff_store.lead_states
    routed_meanwhile: list[CloudEvent] = []

    async def router_commits_meanwhile(session: Any, lead_ids: Sequence[UUID]) -> Any:
        monkeypatch.setattr(handoff_store, "lead_states", read_lead_states)
        routed_meanwhile.extend(await flow.route(after=flow.handoff.after_routing))
        return await read_lead_states(session, lead_ids)

    monkeypatch.setattr(handoff_store, "lead_states", router_commits_meanwhile)
    assert await flow.hand_over([mql]) == []
    routed, qualified = routed_meanwhile
    assert (routed.type, qualified.type) == ("lead.routed", "lead.qualified")
    async with flow.db.sessions() as session:
        remembered = await session.get(LeadHandoff, lead_id)
    assert remembered is not None and remembered.event_id == qualified.id


async def test_a_failing_handoff_does_not_stop_routing_and_the_consumer_hands_over(
    flow: Flow, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[list[UUID]] = []

    async def broken(session: Any, lead_ids: list[UUID], now: datetime) -> None:
        calls.append(lead_ids)
        await flow.handoff.after_routing(session, lead_ids, now)  # staged, then rolled back
        raise RuntimeError("a bug in the handoff")

    lead_id, _ = await flow.post(FORM)
    [received] = await flow.fresh()
    scored = await flow.score(received)
    [routed] = await flow.route(after=broken)  # the round again, without the handoff
    assert routed.type == "lead.routed" and calls == [[lead_id]]
    logged = [r.getMessage() for r in caplog.records if r.name == "services.routing.pending"]
    assert logged == [
        "the work after routing failed; this round is routed without it (the consumers of its "
        "lead.routed and lead.queued do that work)"
    ]
    async with flow.db.sessions() as session:
        assert await session.get(LeadHandoff, lead_id) is None
        lead = await session.get(Lead, lead_id)
    assert lead is not None and lead.routing_status == "routed"
    [event] = await flow.hand_over([*scored, routed])
    assert event.data.owner is not None and event.data.owner.id == lead.owner_id


async def test_the_database_lost_during_the_handoff_leaves_the_lead_pending(flow: Flow) -> None:
    async def lost(session: Any, lead_ids: list[UUID], now: datetime) -> None:
        raise ConnectionResetError("the server closed the connection")

    lead_id, _ = await flow.post(FORM)
    [received] = await flow.fresh()
    await flow.score(received)
    with pytest.raises(ConnectionResetError):  # an outage: the router retries the round later
        await flow.route(after=lost)
    async with flow.db.sessions() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None and (lead.routing_status, lead.owner_id) == ("pending", None)
    routed, qualified = await flow.route(after=flow.handoff.after_routing)
    assert (routed.type, qualified.type) == ("lead.routed", "lead.qualified")


async def test_sql_promotion_and_reassignment_each_hand_over_again(flow: Flow) -> None:
    lead_id, _, events = await qualified_and_routed(flow)
    [first] = await flow.hand_over(events)
    ana = first.data.owner
    assert ana is not None

    accepted_at = flow.tick()
    accepted = await flow.score(outcome(lead_id, "accepted", accepted_at))
    assert [e.type for e in accepted] == ["lead.scored", "lead.sql"]
    assert accepted[-1].data.caused_at == accepted_at < accepted[-1].time  # type: ignore[attr-defined]
    [promoted] = await flow.hand_over(accepted)
    why = promoted.data.qualification
    assert (promoted.data.handoff, promoted.data.owner) == ("promoted", ana)
    assert (why.stage, why.cause, why.reached_at, why.next_stage) == (
        "sql",
        "rules",
        accepted[-1].time,
        "opportunity",
    )
    assert why.missing == ["an opportunity: the CRM posts the outcome 'opportunity'"]

    moved = await flow.score(outcome(lead_id, "rejected", flow.tick(), reason="wrong_territory"))
    [event] = of_type(moved, "lead.reassigned")
    [reassigned] = await flow.hand_over(moved)
    data = reassigned.data
    assert (data.handoff, data.qualification.stage) == ("reassigned", "sql")
    assert data.owner is not None and data.owner.id != ana.id
    assert data.owner.id == event.data.owner_id  # type: ignore[attr-defined]
    assert data.routing is not None and data.routing.trigger == "rejected"
    assert data.routing.reason.startswith("rejected by owner: wrong_territory")
    assert data.sla is not None and data.sla.deadline == event.time + timedelta(hours=1)
    assert await flow.hand_over([*events, *accepted, *moved]) == []  # redelivered: nothing new


async def test_a_recycled_lead_that_qualifies_again_is_handed_over_anew(flow: Flow) -> None:
    lead_id, _, events = await qualified_and_routed(flow)
    assert len(await flow.hand_over(events)) == 1
    recycled = await flow.score(outcome(lead_id, "rejected", flow.tick(), reason="no_budget"))
    assert "lead.recycled" in [e.type for e in recycled]
    assert await flow.hand_over(recycled) == []
    async with flow.db.sessions() as session:
        assert await session.get(LeadHandoff, lead_id) is None  # out of sales' hands: forgotten
    again = await flow.score(activity(lead_id, "demo_request", flow.tick()))
    assert "lead.mql" in [e.type for e in again]
    rerouted = await flow.route()
    [requalified] = await flow.hand_over([*again, *rerouted])
    assert (requalified.data.handoff, requalified.data.qualification.stage) == ("qualified", "mql")
    assert requalified.data.qualification.reached_at == of_type(again, "lead.mql")[0].time


async def test_a_queued_lead_is_handed_to_its_queue_then_to_an_owner(flow: Flow) -> None:
    async with flow.db.sessions.begin() as session:
        for email in SAMPLE_OWNERS:
            await rep(session, email, "default", max_open=0)  # nobody can take a lead
        team_id = await session.scalar(select(Team.id).where(Team.name == "default"))
    lead_id, _ = await flow.post(FORM)
    [received] = await flow.fresh()
    events = [*await flow.score(received), *await flow.route()]
    [queued] = of_type(events, "lead.queued")
    [waiting] = await flow.hand_over(events)
    data = waiting.data
    assert (data.handoff, data.owner) == ("qualified", None)
    assert data.queue == HandoffQueue(team_id=team_id, team="default")
    assert data.sla == HandoffSla(
        policy="hot", clock="pickup", deadline=queued.time + timedelta(minutes=10), target_s=600
    )

    async with flow.db.sessions.begin() as session:
        await rep(session, "bo@example.com", "default", name="Bo Berg")  # room again
    assert await sweep_queue(flow.runtime, now=flow.tick()) == 1
    [picked] = await flow.hand_over(await flow.fresh())
    assert picked.data.handoff == "reassigned" and picked.data.queue is None
    assert picked.data.owner is not None and picked.data.owner.email == "bo@example.com"
    assert picked.data.sla is not None and picked.data.sla.clock == "first_response"


async def test_where_the_rules_take_the_next_step_what_is_missing_is_judged(flow: Flow) -> None:
    """From MQL and SQL sales moves a lead on; from an inquiry or SAL the rules do, so what is
    missing there is the lead judged again, as its explanation says."""
    cold = {"email": "sam@gmail.com", "company": "Sam's", "consent": FORM["consent"]}
    lead_id, _ = await flow.post(cold)
    [received] = await flow.fresh()
    assert [e.type for e in await flow.score(received)] == ["lead.scored"]
    qualifications = handoff_parts().qualification
    for stage in ("inquiry", "sal"):
        async with flow.db.sessions.begin() as session:
            lead = await session.get(Lead, lead_id)
            assert lead is not None
            lead.stage = stage
        async with flow.db.sessions() as session:
            found = await qualifications(session, [lead_id], now=flow.now)
        async with client_for(flow.runtime, headers=AUTH) as client:
            explained = (await client.get(f"/v1/leads/{lead_id}/explain")).json()
        why = found[lead_id]
        assert why.missing and why.missing == explained["missing"], stage
        assert why.next_stage == explained["next_stage"] == {"inquiry": "mql", "sal": "sql"}[stage]


async def test_a_test_lead_is_never_handed_over(flow: Flow) -> None:
    lead_id, _, events = await qualified_and_routed(flow)
    async with flow.db.sessions.begin() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.is_test = True
    assert await flow.hand_over(events) == []


async def test_an_ad_platform_lead_carries_its_campaign_ids(db: Database) -> None:
    platforms = {"google_ads_key": "g00gle-k3y"}
    runtime = Runtime.create(make_settings(db, platforms=platforms))
    body = {
        "lead_id": "lead-123", "form_id": 4242, "campaign_id": 777, "adgroup_id": 55,
        "creative_id": 9, "gcl_id": "gcl-abc", "api_version": "1.0", "google_key": "g00gle-k3y",
        "user_column_data": [
            {"column_id": "EMAIL", "string_value": "grace@hopper.example.org"},
            {"column_id": "FULL_NAME", "string_value": "Grace Hopper"},
        ],
    }  # fmt: skip
    try:
        async with client_for(runtime) as client:
            response = await client.post("/v1/ingest/google-ads", json=body)
        assert response.status_code == 200, response.text
        lead_id = UUID(response.json()["lead_id"])
        async with runtime.sessions() as session:
            [facts] = (await lead_intake(session, [lead_id], now=datetime.now(UTC))).values()
    finally:
        await runtime.close()
    ad = facts.attribution.ad
    assert ad is not None and (ad.platform, ad.platform_lead_id) == ("google-ads", "lead-123")
    assert ad.ids == {
        "form_id": "4242", "campaign_id": "777", "adgroup_id": "55", "creative_id": "9",
        "gcl_id": "gcl-abc",
    }  # fmt: skip
    assert facts.attribution.inquiry_source == "google-ads" and facts.consent is None
    assert (facts.contact.first_name, facts.contact.last_name) == ("Grace", "Hopper")


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key of a JSON document as a path (``data.owner.email``; a list's items: ``[]``)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found |= {path} | key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= key_paths(item, f"{prefix}[]")
    return found
