"""What the analytics consumer keeps of each event (pure): the funnel's facts, dated by when
what they report happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from services.analytics.facts import fact_of
from shared.events import (
    LeadOutcome,
    LeadOutcomeData,
    LeadReceived,
    LeadReceivedData,
    LeadScored,
    LeadScoredData,
    LeadSql,
    StageChangedData,
)

LEAD, INQUIRY = uuid4(), uuid4()
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_stage_is_dated_by_what_caused_it() -> None:
    """Sales accepted at 11:00, the opportunity came at 11:01, scoring applied the acceptance at
    12:00: the SQL is dated 11:00, before the opportunity."""
    accepted = NOW - timedelta(hours=1)
    data = StageChangedData(
        lead_id=LEAD, from_stage="sal", to_stage="sql", cause="rules", caused_at=accepted
    )
    fact = fact_of(LeadSql.about_lead(LEAD, data, source="/t", time=NOW, ruleset="v1"), {})
    assert fact is not None
    assert (fact.kind, fact.occurred_at, fact.detail["ruleset"]) == ("sql", accepted, "v1")
    undated = data.model_copy(update={"caused_at": None})
    fact = fact_of(LeadSql.about_lead(LEAD, undated, source="/t", time=NOW), {})
    assert fact is not None and fact.occurred_at == NOW


def test_an_outcome_is_dated_when_it_happened_and_an_inquiry_by_its_origin() -> None:
    happened = NOW - timedelta(days=2)
    outcome = LeadOutcomeData(
        lead_id=LEAD, outcome="booked", occurred_at=happened, amount=900.0, currency="EUR"
    )
    fact = fact_of(LeadOutcome.about_lead(LEAD, outcome, source="/t", time=NOW), {})
    assert fact is not None and (fact.kind, fact.occurred_at) == ("outcome", happened)
    assert (fact.detail["outcome"], fact.detail["amount"]) == ("booked", 900.0)

    received = LeadReceivedData(lead_id=LEAD, inquiry_id=INQUIRY, source="web", new_lead=True)
    event = LeadReceived.about_lead(LEAD, received, source="/t", time=NOW)
    origin = {"source": "form-x", "campaign": "spring", "medium": "email"}
    fact = fact_of(event, {INQUIRY: origin})
    assert fact is not None and fact.detail == origin | {"source": "web", "is_test": False}
    alone = fact_of(event, {})  # the inquiry is gone (erased): its event's source still counts
    assert alone is not None and alone.detail == {"source": "web", "is_test": False}


def test_events_the_funnel_does_not_read_are_passed_over() -> None:
    scored = LeadScoredData(lead_id=LEAD, score=10)
    assert fact_of(LeadScored.about_lead(LEAD, scored, source="/t", time=NOW), {}) is None
