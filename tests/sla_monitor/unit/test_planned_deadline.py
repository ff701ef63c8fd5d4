"""The deadline a handoff announces is worked out alone (``plan_deadline``); it must be the one
the monitor's clock then gets (``start_clock``), whichever calendar the policy, owner or team
picks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.sla_monitor.clocks import Opening, plan_deadline, start_clock
from services.sla_monitor.policy import compile_policies

POLICIES = """
name: Calendars
calendars:
  office: {time_zone: Europe/Berlin, hours: "mon-fri 09:00-17:00"}
  support: {time_zone: America/New_York, hours: "mon-sat 08:00-20:00"}
owners: {ana@example.com: office}
teams: {inbound: support}
policies:
  - id: hot
    pickup: {within: 10m}
    first_response: {within: 3h, ladder: [{at: 50%, notify: [owner]}]}
"""
FRIDAY_EVENING = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "owner_email", "team"),
    [
        ("first_response", "ana@example.com", None),
        ("first_response", "bo@example.com", "inbound"),
        ("first_response", None, None),
        ("pickup", None, "inbound"),
    ],
)
def test_the_planned_deadline_is_the_started_clocks(
    kind: str, owner_email: str | None, team: str | None
) -> None:
    policies = compile_policies(POLICIES)
    policy = policies.spec.policies[0]
    for hours in range(0, 72, 5):
        opening = Opening(
            uuid4(),
            kind,
            FRIDAY_EVENING + timedelta(hours=hours),
            None,
            owner_email,
            team,  # type: ignore[arg-type]
        )
        planned = plan_deadline(opening, policies=policies, policy=policy)
        started = start_clock(
            opening, policies=policies, version=1, policy=policy, now=opening.started_at
        )
        assert planned is not None and started is not None
        clock, _ = started
        assert (planned.policy, planned.kind, planned.deadline, planned.target_s) == (
            clock.policy,
            clock.kind,
            clock.deadline,
            clock.target_s,
        )
