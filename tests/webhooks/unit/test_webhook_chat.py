"""Events as chat messages (``slack``-format subscriptions): one line per SLA event type, a
generic line for the others, nothing personal and nothing outside the rendered fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import pytest

from services.webhooks.chat import line, message
from services.webhooks.matching import outbound
from services.webhooks.settings import WebhookSettings
from shared.events import (
    CloudEvent,
    LeadMql,
    SlaAcknowledged,
    SlaAcknowledgedData,
    SlaBreached,
    SlaBreachedData,
    SlaCancelled,
    SlaCancelledData,
    SlaEscalated,
    SlaEscalatedData,
    SlaMet,
    SlaMetData,
    SlaStarted,
    SlaStartedData,
    SlaWarning,
    SlaWarningData,
    StageChangedData,
)

LEAD = UUID("0b7c5e1e-8a4f-4c2a-9a57-3f1d2e6b9c01")
OWNER = UUID("5d1f0c7a-2b3e-4f60-8c9d-1a2b3c4d5e6f")
DEADLINE = datetime(2026, 3, 2, 10, 30, 15, tzinfo=UTC)
CLOCK: dict[str, Any] = {
    "lead_id": LEAD,
    "clock": "first_response",
    "policy": "hot",
    "owner_id": OWNER,
    "owner_email": "ana@example.com",
    "team": "emea",
    "deadline": DEADLINE,
}
WHO = f"lead {LEAD} (owner ana@example.com, team emea)"


def about(event_type: type[CloudEvent], data: Any) -> dict[str, Any]:
    """The event as a ``slack`` subscription is given it: its JSON, consent applied."""
    event = event_type.about_lead(LEAD, data, source="/leadflow/sla", time=DEADLINE)
    document = orjson.loads(event.encode())
    settings = WebhookSettings()
    return outbound(document, settings.consent_fields, settings.consent_flags)


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        (
            SlaStarted,
            SlaStartedData(
                **CLOCK, started_at=DEADLINE, target_s=900, calendar="emea-business-hours"
            ),
            f":stopwatch: SLA started — {WHO}: first_response due 2026-03-02T10:30Z"
            " (target 15m, policy hot)",
        ),
        (
            SlaWarning,
            SlaWarningData(**CLOCK, tier=1, at="50%"),
            f":warning: SLA warning — {WHO}: first_response deadline 2026-03-02T10:30Z"
            " approaching (tier 1 at 50%, policy hot)",
        ),
        (
            SlaBreached,
            SlaBreachedData(**CLOCK, tier=2, at="100%"),
            f":rotating_light: SLA breached — {WHO}: first_response deadline 2026-03-02T10:30Z"
            " passed (policy hot)",
        ),
        (
            SlaBreached,
            SlaBreachedData(**CLOCK, tier=2, at="100%", late=True, late_by_s=3900),
            f":rotating_light: SLA breached — {WHO}: first_response deadline 2026-03-02T10:30Z"
            " passed (fired 1h 5m late, policy hot)",
        ),
        (
            SlaEscalated,
            SlaEscalatedData(**CLOCK, tier=3, at="100% + 30m"),
            f":arrow_double_up: SLA escalated — {WHO}: first_response deadline 2026-03-02T10:30Z"
            " passed, reassigning the lead (breached, tier 3 at 100% + 30m, policy hot)",
        ),
        (
            SlaEscalated,
            SlaEscalatedData(
                **CLOCK, tier=2, at="100%", reason="no answer", action="notify", reassign=False
            ),
            f":arrow_double_up: SLA escalated — {WHO}: first_response deadline 2026-03-02T10:30Z"
            " passed, notifying the manager (no answer, tier 2 at 100%, policy hot)",
        ),
        (
            SlaAcknowledged,
            SlaAcknowledgedData(**CLOCK, by="maria@example.com", note="called her at +1 555 0100"),
            f":eyes: SLA acknowledged — {WHO}: first_response acknowledged by maria@example.com"
            " (policy hot)",
        ),
        (
            SlaMet,
            SlaMetData(
                **CLOCK,
                responded_at=datetime(2026, 3, 2, 10, 12, tzinfo=UTC),
                response="call",
                working_time_s=720,
                elapsed_s=720,
                breached=False,
            ),
            f":white_check_mark: SLA met — {WHO}: first_response answered at 2026-03-02T10:12Z"
            " (call, 12m working time, policy hot)",
        ),
        (
            SlaMet,
            SlaMetData(
                **CLOCK,
                responded_at=datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
                response="email",
                working_time_s=30_600,
                elapsed_s=81_000,
                breached=True,
            ),
            f":white_check_mark: SLA met late — {WHO}: first_response answered at"
            " 2026-03-03T09:00Z (email, 8h 30m working time, policy hot)",
        ),
        (
            SlaCancelled,
            SlaCancelledData(**CLOCK, reason="disqualified"),
            f":heavy_multiplication_x: SLA cancelled — {WHO}: first_response clock stopped:"
            " disqualified (policy hot)",
        ),
    ],
)
def test_each_sla_event_reads_as_one_line(
    event_type: type[CloudEvent], data: Any, expected: str
) -> None:
    assert line(about(event_type, data)) == expected


def test_a_queued_lead_is_unassigned_and_a_missing_field_is_left_out() -> None:
    queued = {**CLOCK, "owner_id": None, "owner_email": None, "clock": "pickup"}
    assert line(about(SlaWarning, SlaWarningData(**queued))) == (
        f":warning: SLA warning — lead {LEAD} (unassigned, team emea): pickup deadline"
        " 2026-03-02T10:30Z approaching (policy hot)"
    )
    # An owner whose address the subscriber may not see (left out upstream): no owner shown.
    document = about(SlaBreached, SlaBreachedData(**CLOCK))
    del document["data"]["owner_email"]
    assert line(document).startswith(f":rotating_light: SLA breached — lead {LEAD} (team emea):")


def test_other_types_get_a_generic_line() -> None:
    data = StageChangedData(lead_id=LEAD, from_stage="lead", to_stage="mql", cause="rules")
    assert line(about(LeadMql, data)) == f"lead.mql for lead {LEAD}"
    assert line({"type": "subscription.disabled", "data": {"url": "https://x"}}) == (
        "subscription.disabled"
    )
    assert line({"type": "sla.paused", "subject": str(LEAD), "data": {}}) == (
        f"sla.paused for lead {LEAD}"
    )


def test_nothing_personal_or_unrendered_reaches_the_chat_even_when_shared() -> None:
    personal = {
        "email": "lead@corp.example",
        "phone": "+15550100",
        "first_name": "Grace",
        "note": "prefers mornings",
        "api_token": "tok_s3cr3t",
        "consent": {"flags": {"contact": True}},
    }
    for event_type in ("lead.received", "sla.breached", "sla.acknowledged"):
        document = {
            "type": event_type,
            "id": "e1",
            "subject": str(LEAD),
            "data": {**CLOCK, "deadline": "2026-03-02T10:30:00Z", "by": "x", **personal},
        }
        settings = WebhookSettings()
        shown = outbound(document, settings.consent_fields, settings.consent_flags)
        assert shown["data"]["email"] == "lead@corp.example"  # consented: only the chat omits it
        body = orjson.dumps(message(shown))
        for value in ("lead@corp.example", "+15550100", "Grace", "mornings", "tok_s3cr3t"):
            assert value.encode() not in body, (event_type, value)


def test_the_message_carries_text_and_blocks_and_escapes_slack_markup() -> None:
    document = about(
        SlaBreached, SlaBreachedData(**{**CLOCK, "team": "<!channel> & <https://evil|x>"})
    )
    shown = message(document)
    assert shown["text"] == line(document)
    assert (
        "<" not in shown["text"]
        and "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in (shown["text"])
    )
    section, context = shown["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": shown["text"]}}
    assert context["elements"][0]["text"] == (
        f"sla.breached · 2026-03-02T10:30Z · event {document['id']}"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-02T10:30:59Z", "2026-03-02T10:30Z"),
        ("2026-03-02T12:30:00+02:00", "2026-03-02T10:30Z"),
        ("2026-03-02T10:30:00", "2026-03-02T10:30Z"),
        ("soon", "soon"),
        (None, "unknown"),
    ],
)
def test_times_are_utc_to_the_minute(value: Any, shown: str) -> None:
    data = {**CLOCK, "lead_id": str(LEAD), "deadline": value}
    assert f"deadline {shown} passed" in line({"type": "sla.breached", "data": data})


def test_long_values_are_clipped() -> None:
    data = {**CLOCK, "lead_id": str(LEAD), "team": "x" * 5000}
    assert len(line({"type": "sla.breached", "data": data})) < 400
