"""The emission rule of ``lead.qualified`` (pure): when a lead is handed to sales, and as what."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from services.handoff.decide import HandoffKey, LeadState, decide
from services.handoff.settings import HandoffSettings
from services.scoring.lifecycle import STAGES
from shared.events import LIFECYCLE_STAGES

ANA = UUID("0193a1b2-0000-7000-8000-0000000000a1")
BO = UUID("0193a1b2-0000-7000-8000-0000000000b0")
INBOUND = UUID("0193a1b2-0000-7000-8000-00000000001b")
STAGES_ON = ("mql", "sql")


def owned(stage: str = "mql", owner: UUID = ANA, **flags: Any) -> LeadState:
    return LeadState(stage, "routed", owner, INBOUND, **flags)


def queued(stage: str = "mql", team: UUID = INBOUND) -> LeadState:
    return LeadState(stage, "queued", None, team)


def key(stage: str = "mql", owner: UUID | None = ANA, team: UUID | None = None) -> HandoffKey:
    return HandoffKey(stage, owner, team)


@pytest.mark.parametrize(
    ("state", "last", "expected"),
    [
        pytest.param(owned(), None, ("qualified", key()), id="first handoff, to an owner"),
        pytest.param(
            queued(), None, ("qualified", key(owner=None, team=INBOUND)), id="first, to a queue"
        ),
        pytest.param(owned("sql"), key(), ("promoted", key("sql")), id="SQL, same owner"),
        pytest.param(
            owned("sql", BO), key("sql"), ("reassigned", key("sql", BO)), id="another owner"
        ),
        pytest.param(
            queued(), key(), ("reassigned", key(owner=None, team=INBOUND)), id="back to a queue"
        ),
        pytest.param(
            owned(), key(owner=None, team=INBOUND), ("reassigned", key()), id="out of the queue"
        ),
        pytest.param(
            owned("sql", BO), key(), ("reassigned", key("sql", BO)), id="SQL and another owner"
        ),
        pytest.param(owned(), key(), None, id="the same handoff again"),
        pytest.param(queued(), key(owner=None, team=INBOUND), None, id="the same queue again"),
        pytest.param(owned("sal"), key(), None, id="sal is no handoff stage by default"),
        pytest.param(owned("recycled"), key(), None, id="recycled"),
        pytest.param(LeadState("mql", "pending"), None, None, id="not routed yet"),
        pytest.param(LeadState("mql", "closed", ANA), None, None, id="released"),
        pytest.param(LeadState("mql", None), None, None, id="routing is off"),
        pytest.param(owned(is_test=True), None, None, id="a test lead"),
        pytest.param(owned(quarantined=True), None, None, id="quarantined"),
        pytest.param(owned(erased=True), None, None, id="erased"),
    ],
)
def test_when_a_lead_is_handed_over(
    state: LeadState, last: HandoffKey | None, expected: tuple[str, HandoffKey] | None
) -> None:
    assert decide(state, last, STAGES_ON) == expected


def test_the_handoff_stages_are_configurable() -> None:
    assert decide(owned("mql"), None, ("sql",)) is None
    assert decide(owned("sql"), None, ("sql",)) == ("qualified", key("sql"))
    assert decide(owned("sal"), key(), ("mql", "sal", "sql")) == ("promoted", key("sal"))
    assert decide(owned("mql"), None, ()) is None


def test_the_stages_setting_refuses_an_unknown_stage_by_name() -> None:
    with pytest.raises(ValueError, match="unknown stage 'SQL'.*inquiry, mql, sal, sql"):
        HandoffSettings(stages=["mql", "SQL"])
    assert HandoffSettings(stages=["sql", "mql", "sql"]).stages == ["sql", "mql"]
    assert HandoffSettings().stages == ["mql", "sql"]


def test_the_shared_stage_names_are_the_lifecycles() -> None:
    assert LIFECYCLE_STAGES == STAGES
