"""Assembling ``lead.qualified`` from a lead's parts (pure): what comes from where, the links, the
ruleset extension, and the lead's state as the event would describe it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.handoff.decide import LeadState
from services.handoff.parts import LeadParts
from services.handoff.snapshot import links, qualified_event, snapshot, state_of
from services.intake.handoff import LeadIntake
from services.routing.handoff import LeadRouting
from shared.events import (
    HandoffAttribution,
    HandoffCompany,
    HandoffConsent,
    HandoffContact,
    HandoffOwner,
    HandoffQualification,
    HandoffQueue,
    HandoffRouting,
    HandoffSla,
    LeadQualified,
    decode,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LEAD = UUID("0193a1b2-0000-7000-8000-000000000001")
INQUIRY = UUID("0193a1b2-0000-7000-8000-000000000002")
ANA = UUID("0193a1b2-0000-7000-8000-0000000000a1")
TEAM = UUID("0193a1b2-0000-7000-8000-00000000001b")
ACCOUNT = UUID("0193a1b2-0000-7000-8000-0000000000cc")
URL = "https://leadflow.example.com/"


def intake(**overrides: Any) -> LeadIntake:
    values: dict[str, Any] = {
        "contact": HandoffContact(email="ada@engines.example", first_name="Ada", title="CTO"),
        "company": HandoffCompany(name="Analytical Engines", domain="engines.example", size="250"),
        "attribution": HandoffAttribution(
            source="web", inquiry_source="web", inquiry_id=INQUIRY, received_at=NOW, inquiries=1
        ),
        "consent": HandoffConsent(text="Yes", flags={"contact": True}, given_at=NOW),
        "custom": {"budget": "50k"},
    }
    return LeadIntake(**(values | overrides))


def routing(owner: bool = True, queue: bool = False) -> LeadRouting:
    return LeadRouting(
        owner=HandoffOwner(id=ANA, email="ana@co.example", name="Ana", team_id=TEAM, team="inbound")
        if owner
        else None,
        queue=HandoffQueue(team_id=TEAM, team="inbound") if queue else None,
        routing=HandoffRouting(
            trigger="qualified", rule="default", reason="round robin", decided_at=NOW
        ),
        is_expansion=True,
        account_id=ACCOUNT,
    )


def parts(**overrides: Any) -> LeadParts:
    values: dict[str, Any] = {
        "intake": intake(),
        "qualification": HandoffQualification(stage="mql", cause="rules", ruleset="default-v3"),
        "routing": routing(),
        "sla": HandoffSla(
            policy="hot", clock="first_response", deadline=NOW + timedelta(hours=1), target_s=3600
        ),
    }
    return LeadParts(**(values | overrides))


def test_the_snapshot_takes_each_part_from_its_service() -> None:
    given = parts()
    data = snapshot(LEAD, given, handoff="qualified", public_url=URL)
    assert data.contact == given.intake.contact and data.attribution == given.intake.attribution
    assert data.company.name == "Analytical Engines" and data.company.size == "250"
    assert (data.company.account_id, data.company.is_expansion) == (ACCOUNT, True)  # routing's
    assert data.qualification == given.qualification and data.sla == given.sla
    assert data.owner == given.routing.owner and data.queue is None
    assert data.routing == given.routing.routing and data.custom == {"budget": "50k"}
    assert (data.handoff, data.is_test, data.consent) == ("qualified", False, given.intake.consent)


def test_a_lead_in_a_queue_has_the_queue_and_no_owner() -> None:
    queued = parts(routing=routing(owner=False, queue=True))
    data = snapshot(LEAD, queued, handoff="reassigned", public_url=URL)
    assert data.owner is None and data.queue == HandoffQueue(team_id=TEAM, team="inbound")


def test_the_links_start_with_the_public_url_without_a_double_slash() -> None:
    found = links(URL, LEAD)
    assert found.lead == f"https://leadflow.example.com/v1/leads/{LEAD}"
    assert found.explanation == f"https://leadflow.example.com/v1/leads/{LEAD}/explain"
    assert found.routing == f"https://leadflow.example.com/v1/leads/{LEAD}/routing"


def test_the_event_names_the_ruleset_that_qualified_the_lead_and_round_trips() -> None:
    event = qualified_event(snapshot(LEAD, parts(), handoff="promoted", public_url=URL), now=NOW)
    assert isinstance(event, LeadQualified)
    assert (event.type, event.subject, event.ruleset) == ("lead.qualified", str(LEAD), "default-v3")
    assert (event.source, event.time) == ("/leadflow/handoff", NOW)
    assert decode(event.encode()) == event


def test_the_parts_describe_the_lead_as_the_rule_sees_it() -> None:
    assert state_of(parts()) == LeadState("mql", "routed", ANA, None)
    queued = parts(routing=routing(owner=False, queue=True))
    assert state_of(queued) == LeadState("mql", "queued", None, TEAM)
    nowhere = parts(routing=routing(owner=False), intake=intake(is_test=True))
    assert state_of(nowhere) == LeadState("mql", None, None, None, is_test=True)
