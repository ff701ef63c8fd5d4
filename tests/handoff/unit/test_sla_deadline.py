"""The SLA deadline a handoff announces (pure): the clock the SLA monitor opens for the lead as
routed, worked out the way its consumer does (services/sla_monitor/tracking.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from services.routing.handoff import LeadRouting
from services.sla_monitor.handoff import deadline
from services.sla_monitor.policy import compile_policies
from shared.events import HandoffOwner, HandoffQueue, HandoffRouting, HandoffSla
from tests.support.sla import POLICIES

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
ANA = UUID("0193a1b2-0000-7000-8000-0000000000a1")
LIVE = (3, compile_policies(POLICIES))
HOUR = timedelta(hours=1)


def lead(**overrides: Any) -> SimpleNamespace:
    """The lead row's columns the policies read (services/sla_monitor/store.LEAD_COLUMNS)."""
    values: dict[str, Any] = {
        "id": UUID("0193a1b2-0000-7000-8000-000000000001"), "stage": "mql", "fit_grade": "B",
        "score": 40, "engagement_score": 15, "source": "web", "country": "DE",
        "is_expansion": False, "is_test": False, "erased_at": None, "created_at": NOW,
    }  # fmt: skip
    return SimpleNamespace(**(values | overrides))


def routed(*, available_at: datetime | None = None, queue: bool = False) -> LeadRouting:
    owner = HandoffOwner(id=ANA, email="ana@example.com", name="Ana", team="inbound")
    return LeadRouting(
        owner=None if queue else owner,
        queue=HandoffQueue(team="inbound") if queue else None,
        routing=HandoffRouting(
            trigger="qualified",
            rule="default",
            reason="round robin",
            decided_at=NOW,
            available_at=available_at,
        ),
        is_expansion=False,
        account_id=None,
    )


def test_an_owned_lead_gets_the_first_response_deadline() -> None:
    found = deadline(lead(), [], routed(), LIVE)
    assert found == HandoffSla(
        policy="hot", clock="first_response", deadline=NOW + HOUR, target_s=3600
    )


def test_held_for_the_owners_hours_the_clock_starts_when_they_do() -> None:
    later = NOW + timedelta(hours=17)
    found = deadline(lead(), [], routed(available_at=later), LIVE)
    assert found is not None and found.deadline == later + HOUR


def test_a_queued_lead_gets_the_pickup_deadline() -> None:
    found = deadline(lead(), [], routed(queue=True), LIVE)
    assert found == HandoffSla(
        policy="hot", clock="pickup", deadline=NOW + timedelta(minutes=10), target_s=600
    )


def test_no_deadline_where_no_policy_applies_or_for_a_test_lead() -> None:
    assert deadline(lead(source="event"), [], routed(), LIVE) is None
    assert deadline(lead(is_test=True), [], routed(), LIVE) is None
    assert deadline(lead(erased_at=NOW), [], routed(), LIVE) is None
    never = LeadRouting(owner=None, queue=None, routing=None, is_expansion=None, account_id=None)
    assert deadline(lead(), [], never, LIVE) is None
