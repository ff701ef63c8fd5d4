"""The SLA emails as composed (pure): who gets one, the subject lines, what the body tells a rep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.sla_monitor.messages import LeadCard, SlaNotice, compose, explain_url
from shared.events import (
    SlaBreached,
    SlaBreachedData,
    SlaEscalated,
    SlaEscalatedData,
    SlaStarted,
    SlaStartedData,
    SlaWarning,
    SlaWarningData,
)

NOW = datetime(2026, 11, 24, 14, 15, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
LEAD = UUID("0193a1b2-0000-7000-8000-000000000001")
URL = "https://leadflow.example.com"
SENDER = "Leadflow <leadflow@example.com>"
LABEL = "Ada Lovelace (Analytical Engines)"


def make_card(**overrides: Any) -> LeadCard:
    values: dict[str, Any] = {
        "lead_id": LEAD,
        "source": "webinar",
        "stage": "mql",
        "name": "Ada Lovelace",
        "company": "Analytical Engines",
        "title": "Head of Computation",
        "phone": "+442071234567",
        "email": "ada@engines.example",
        "fit_grade": "A",
        "score": 87,
        "stage_reason": "fit_threshold",
    }
    return LeadCard(**(values | overrides))


def _tier(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "lead_id": LEAD,
        "clock": "first_response",
        "policy": "inbound-standard",
        "owner_email": "ann@example.com",
        "team": "inside",
        "deadline": DEADLINE,
        "notify": ["ann@example.com"],
    }
    return values | overrides


def started(*, at: datetime = NOW, **overrides: Any) -> SlaStarted:
    data = SlaStartedData(
        **_tier(**overrides), started_at=at, target_s=900, calendar="berlin-office"
    )
    return SlaStarted.about_lead(LEAD, data, source="/sla", time=at)


def warning(*, at: datetime = NOW, **overrides: Any) -> SlaWarning:
    data = SlaWarningData(**_tier(tier=1, at="50%", **overrides))
    return SlaWarning.about_lead(LEAD, data, source="/sla", time=at)


def breached(*, at: datetime = DEADLINE, **overrides: Any) -> SlaBreached:
    data = SlaBreachedData(**_tier(tier=2, at="100%", due_at=DEADLINE, **overrides))
    return SlaBreached.about_lead(LEAD, data, source="/sla", time=at)


def escalated(*, at: datetime = DEADLINE, **overrides: Any) -> SlaEscalated:
    values = _tier(tier=3, at="100% + 30m", notify=["lead-manager@example.com"]) | overrides
    data = SlaEscalatedData(**values)
    return SlaEscalated.about_lead(LEAD, data, source="/sla", time=at)


def one(event: SlaNotice, card: LeadCard | None = None) -> tuple[str, str]:
    [message] = compose(event, card or make_card(), sender=SENDER, public_url=URL)
    return str(message["Subject"]), str(message.get_content())


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (started(), f"New lead for you: {LABEL} — respond by 14:30 UTC"),
        (warning(), f"Reminder: {LABEL} — respond by 14:30 UTC (in 15 min)"),
        (breached(), f"Breached: {LABEL} — first response was due at 14:30 UTC"),
        (
            escalated(),
            f"Escalated: {LABEL} — no first response since 14:30 UTC; moving it to another owner",
        ),
        (escalated(reassign=False), f"Escalated: {LABEL} — no first response since 14:30 UTC"),
        (
            started(clock="pickup", owner_email=None, notify=["dach-queue@example.com"]),
            f"New lead in the inside queue: {LABEL} — pick it up by 14:30 UTC",
        ),
        (
            started(notify=["boss@example.com"]),
            f"New lead for ann@example.com: {LABEL} — respond by 14:30 UTC",
        ),
        (
            warning(clock="acceptance", deadline=DEADLINE + timedelta(days=1, hours=2)),
            f"Reminder: {LABEL} — accept or reject it by Wed 25 Nov 16:30 UTC (in 1 d 2 h)",
        ),
    ],
)
def test_subjects_say_in_plain_words_what_happened_to_which_lead_and_by_when(
    event: SlaNotice, expected: str
) -> None:
    assert one(event)[0] == expected


@pytest.mark.parametrize(
    ("deadline", "relative"),
    [
        (NOW + timedelta(seconds=20), "now"),
        (NOW + timedelta(seconds=45), "in 45 s"),
        (NOW + timedelta(hours=2, minutes=5), "in 2 h 5 min"),
        (NOW + timedelta(hours=3), "in 3 h"),
        (NOW - timedelta(minutes=10), "10 min ago"),
    ],
)
def test_the_time_left_is_counted_from_the_events_time(deadline: datetime, relative: str) -> None:
    subject, body = one(warning(deadline=deadline))
    assert subject.endswith(f"({relative})")
    assert f"({relative})." in body


def test_the_body_has_what_a_rep_needs_to_call_the_lead_and_why_it_qualified() -> None:
    _, body = one(started())
    for expected in [
        "A new lead was routed to you: respond by the deadline.",
        "Deadline: 2026-11-24T14:30:00Z (in 15 min).",
        "Name:      Ada Lovelace",
        "Title:     Head of Computation",
        "Company:   Analytical Engines",
        "Phone:     +442071234567",
        "Email:     ada@engines.example",
        "Source:    webinar",
        "Stage:     mql",
        "Qualified: fit grade A, score 87, reason: fit_threshold",
        f"{URL}/v1/leads/{LEAD}/explain",
        "SLA: policy inbound-standard, clock first response, tier 0, owner ann@example.com",
    ]:
        assert expected in body


def test_what_the_lead_did_not_give_is_left_out_rather_than_written_as_none() -> None:
    card = make_card(name=None, title=None, phone=None, company=None, stage_reason=None)
    subject, body = one(started(), card)
    assert subject == "New lead for you: ada@engines.example — respond by 14:30 UTC"
    assert "Title:" not in body and "Phone:" not in body and "Company:" not in body
    assert "Qualified: fit grade A, score 87\n" in body
    assert "None" not in body


def test_a_late_tier_says_it_is_late_and_by_how_much() -> None:
    late = breached(at=DEADLINE + timedelta(minutes=3, seconds=5), late=True, late_by_s=185)
    _, body = one(late)
    assert "Late: this notice was due at 2026-11-24T14:30:00Z and went out 3 min late" in body
    assert "Deadline: 2026-11-24T14:30:00Z (3 min ago)." in body
    assert "Late" not in one(breached())[1]


def test_an_escalation_says_why_and_what_happens_next() -> None:
    _, moved = one(escalated(reason="no first response"))
    _, told = one(escalated(reassign=False, action="notify"))
    assert "Escalated (no first response): no first response from ann@example.com." in moved
    assert "Leadflow is moving the lead to another owner." in moved
    assert "You are told so that you can step in." in told and "moving" not in told


def test_each_recipient_gets_a_message_of_their_own_once() -> None:
    event = started(notify=["ann@example.com", "boss@example.com", "ANN@example.com", " "])
    messages = compose(event, make_card(), sender=SENDER, public_url=URL)
    assert [m["To"] for m in messages] == ["ann@example.com", "boss@example.com"]
    assert {m["From"] for m in messages} == {SENDER}
    assert messages[0]["Subject"].startswith("New lead for you:")
    assert messages[1]["Subject"].startswith("New lead for ann@example.com:")


def test_composing_the_same_event_again_gives_the_same_message_ids() -> None:
    event = started(notify=["ann@example.com", "boss@example.com"])
    first = [m["Message-ID"] for m in compose(event, make_card(), sender=SENDER, public_url=URL)]
    again = [m["Message-ID"] for m in compose(event, make_card(), sender=SENDER, public_url=URL)]
    other = started(notify=["ann@example.com"])
    assert first == again and len(set(first)) == 2
    assert first[0].endswith("@example.com>")
    assert compose(other, make_card(), sender=SENDER, public_url=URL)[0]["Message-ID"] != first[0]


@pytest.mark.parametrize("event", [started(notify=[]), warning(notify=[]), escalated(notify=[])])
def test_an_event_that_names_no_one_sends_nothing(event: SlaNotice) -> None:
    assert compose(event, make_card(), sender=SENDER, public_url=URL) == []


def test_a_line_break_in_a_name_cannot_forge_a_header_or_a_field() -> None:
    card = make_card(name="Ada\r\nBcc: everyone@example.com", company="Engines\nPhone: 0")
    subject, body = one(started(), card)
    assert subject.startswith("New lead for you: Ada Bcc: everyone@example.com (Engines Phone: 0)")
    assert "\nBcc:" not in body and "\nPhone: 0" not in body


def test_the_link_joins_the_public_url_without_a_double_slash() -> None:
    lead = uuid4()
    assert explain_url("https://lf.example.com/", lead) == (
        f"https://lf.example.com/v1/leads/{lead}/explain"
    )
