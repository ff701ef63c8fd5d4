"""shared.tracing's parts, exported over OTLP/HTTP to a real receiver on 127.0.0.1: the settings,
the trace context an event carries, the consumer's spans by event and by lead, routing's handed
over contexts, the log processor; and with tracing off, nothing added to an event."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
import pytest
from opentelemetry.context import Context
from pydantic import ValidationError

from shared import tracing
from shared.config import Settings, TopicSettings, TracingSettings
from shared.events import LeadReceived, LeadReceivedData, decode
from shared.logs import configure_logging
from shared.outbox import outbox_row, traced
from tests.support.otlp import exporting

TOPICS = TopicSettings(prefix="unit")
SETTINGS = Settings()


def received(lead_id: UUID | None = None, **extra: str) -> LeadReceived:
    lead_id = lead_id or uuid4()
    data = LeadReceivedData(lead_id=lead_id, inquiry_id=uuid4(), source="web", new_lead=True)
    return LeadReceived.about_lead(lead_id, data, source="/tests", time=datetime.now(UTC), **extra)


def caller(sampled: bool = True) -> tuple[str, str, str]:
    """A caller's trace id, span id and the traceparent naming them."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"


def parts(traceparent: str) -> tuple[str, str, bool]:
    _version, trace_id, span_id, flags = traceparent.split("-")
    return trace_id, span_id, bool(int(flags, 16) & 1)


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        (None, None),
        ("", None),
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("https://otlp.example/", "https://otlp.example/v1/traces"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_the_endpoint_is_the_collector_address_and_empty_is_off(
    endpoint: str | None, url: str | None
) -> None:
    assert TracingSettings(otlp_endpoint=endpoint).traces_url == url


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValidationError):
        TracingSettings(otlp_endpoint="collector:4318")


def test_off_an_event_is_staged_as_it_is() -> None:
    assert tracing.configure(TracingSettings(), "leadflow-test") is False
    assert not tracing.active
    event = received()
    row = outbox_row(event, SETTINGS)
    assert row["payload"] == event.encode().decode()
    assert "traceparent" not in orjson.loads(row["payload"])


def test_an_event_staged_under_a_context_carries_its_create_span() -> None:
    trace_id, span_id, traceparent = caller()
    with exporting() as otlp:
        parent = tracing.extracted(traceparent, "vendor=abc")
        event = traced(received(), SETTINGS, parent)
        assert event.tracestate == "vendor=abc"
        [span] = otlp.trace(trace_id)
    assert parts(event.traceparent or "") == (trace_id, span.span_id, True)
    assert (span.name, span.kind, span.parent_id) == ("create leadflow.intake", "PRODUCER", span_id)
    assert span.attributes == {
        "messaging.system": "kafka",
        "messaging.operation.type": "create",
        "messaging.operation.name": "create",
        "messaging.destination.name": "leadflow.intake",
        "messaging.message.id": str(event.id),
        "cloudevents.event_id": str(event.id),
        "cloudevents.event_source": "/tests",
        "cloudevents.event_type": "lead.received",
        "cloudevents.event_subject": event.subject,
    }
    # The context is part of the event's JSON: it crosses the outbox and Kafka as it is.
    assert decode(event.encode()) == event


def test_an_event_with_no_context_around_begins_a_trace() -> None:
    with exporting() as otlp:
        row = outbox_row(received(), SETTINGS)
        trace_id, span_id, sampled = parts(orjson.loads(row["payload"])["traceparent"])
        [span] = otlp.trace(trace_id)
    assert sampled and span.span_id == span_id and span.parent_id == ""


@pytest.mark.parametrize(
    "traceparent", ["", "nonsense", "00-" + "0" * 32 + "-" + "1" * 16 + "-01", "00-abc-def-01"]
)
def test_a_malformed_traceparent_is_no_context(traceparent: str) -> None:
    assert tracing.extracted(traceparent) is None


def test_an_event_with_a_malformed_traceparent_is_still_decoded() -> None:
    event = received(traceparent="not a trace")
    assert decode(event.encode()).traceparent == "not a trace"


def test_a_consumed_batch_has_a_span_per_event_and_creates_under_the_same_leads_span() -> None:
    (trace_a, span_a, parent_a), (trace_b, _, parent_b) = caller(), caller()
    first, second = received(traceparent=parent_a), received(traceparent=parent_b)
    with exporting() as otlp:
        with tracing.consuming("unit.scoring", TOPICS) as spans:
            spans.start([first, second])
            followed = outbox_row(received(UUID(second.subject or "")), SETTINGS)
            stranger = outbox_row(received(), SETTINGS)  # no lead of the batch
        after = outbox_row(received(UUID(first.subject or "")), SETTINGS)
        exported = otlp.received()
    [process_a] = [s for s in exported if s.trace_id == trace_a and s.kind == "CONSUMER"]
    assert process_a.parent_id == span_a and process_a.name == "process unit.intake"
    assert process_a.attributes["messaging.consumer.group.name"] == "unit.scoring"
    assert process_a.attributes["messaging.batch.message_count"] == 2
    [process_b] = [s for s in exported if s.trace_id == trace_b and s.kind == "CONSUMER"]
    trace_id, _span, _ = parts(orjson.loads(followed["payload"])["traceparent"])
    [create] = [s for s in exported if s.kind == "PRODUCER" and s.trace_id == trace_b]
    assert trace_id == trace_b and create.parent_id == process_b.span_id
    for row in (stranger, after):  # not a lead of the batch, or after it: a trace of its own
        trace_id, _, _ = parts(orjson.loads(row["payload"])["traceparent"])
        assert trace_id not in {trace_a, trace_b}


def test_a_batch_that_fails_ends_its_spans_as_errors() -> None:
    trace_id, _, traceparent = caller()
    with exporting() as otlp:
        with pytest.raises(RuntimeError), tracing.consuming("unit.scoring", TOPICS) as spans:
            spans.start([received(traceparent=traceparent)])
            raise RuntimeError("the handler failed")
        [span] = otlp.trace(trace_id)
    assert span.status == 2  # ERROR
    assert tracing.parent_for(None) == Context()  # nothing left current


def test_routing_after_the_commit_finds_the_context_scoring_handed_over() -> None:
    trace_id, _, traceparent = caller()
    event = received(traceparent=traceparent)
    with exporting() as otlp:
        with tracing.consuming("unit.scoring", TOPICS) as spans:
            spans.start([event])
            tracing.hand_over()
        routed = outbox_row(received(UUID(event.subject or "")), SETTINGS)  # later, elsewhere
        [process] = [s for s in otlp.trace(trace_id) if s.kind == "CONSUMER"]
        create = [s for s in otlp.trace(trace_id) if s.kind == "PRODUCER"]
    assert parts(orjson.loads(routed["payload"])["traceparent"])[0] == trace_id
    assert [s.parent_id for s in create] == [process.span_id]


def test_work_kept_for_later_keeps_the_span_that_applied_its_event() -> None:
    trace_id, span_id, traceparent = caller()
    event = received(traceparent=traceparent)
    with exporting():
        assert tracing.traceparent_of(event) == traceparent  # outside a batch: the event's own
        with tracing.consuming("unit.webhooks", TOPICS) as spans:
            spans.start([event])
            kept = tracing.traceparent_of(event)
            for_lead = tracing.traceparent_for(event.subject or "")
    assert kept == for_lead
    assert parts(kept or "")[0] == trace_id and parts(kept or "")[1] != span_id


def test_a_trace_not_sampled_stays_unsampled_downstream_and_is_not_exported() -> None:
    trace_id, _, traceparent = caller(sampled=False)
    with exporting(sample_ratio=0.0) as otlp:
        begun = orjson.loads(outbox_row(received(), SETTINGS)["payload"])["traceparent"]
        with tracing.consuming("unit.scoring", TOPICS) as spans:
            event = received(traceparent=traceparent)
            spans.start([event])
            followed = outbox_row(received(UUID(event.subject or "")), SETTINGS)
        assert otlp.received() == []
    assert not parts(begun)[2]
    carried = orjson.loads(followed["payload"])["traceparent"]
    assert parts(carried)[0] == trace_id and not parts(carried)[2]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_lines_carry_the_trace_of_a_batch_of_one(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_id, _, traceparent = caller()
    configure_logging("INFO", json=True)
    log = logging.getLogger("tests.tracing")
    with exporting():
        with tracing.consuming("unit.scoring", TOPICS) as spans:
            spans.start([received(traceparent=traceparent)])
            log.info("inside")
        log.info("outside")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    [inside] = [line for line in lines if line["event"] == "inside"]
    [outside] = [line for line in lines if line["event"] == "outside"]
    assert inside["trace_id"] == trace_id and len(inside["span_id"]) == 16
    assert "trace_id" not in outside
