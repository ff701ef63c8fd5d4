"""End to end through the broker with tracing on: one posted lead is one trace, from the intake
POST through the outbox, Kafka, scoring, routing, the SLA monitor and the webhook delivery, as
exported over OTLP/HTTP to a real receiver; with tracing off, events carry no trace context."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson
import pytest
from sqlalchemy import select

from services.routing.main import add_sample_team
from services.sla_monitor.main import start_sla_monitor
from services.sla_monitor.models import SlaClock
from services.sla_monitor.sample import activate_sample_policies
from services.webhooks.main import start_webhooks
from shared import tracing
from shared.broker import EmbeddedBroker
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.harness import Stack, running_stack
from tests.support.otlp import OtlpReceiver, Span, exporting
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}
WEBHOOKS = {"allowed_networks": ["127.0.0.0/8"], "poll_interval_ms": 50}
GRACE = {"email": "grace@navy.example", "company": "US Navy", "first_name": "Grace"}


async def test_one_posted_lead_is_one_trace_from_the_post_to_the_webhook_delivery(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, webhooks=WEBHOOKS)
    topics = settings.topics
    with exporting() as otlp:
        others = Runtime.create(settings)  # the SLA monitor's and the webhook service's process
        others.start_relay("others-relay")
        start_sla_monitor(others)
        start_webhooks(others)
        try:
            async with Receiver() as crm, running_stack(settings, handoff=True) as stack:
                await add_sample_team(stack.intake)
                await activate_sample_policies(stack.intake)
                await _subscribe(stack, crm.url(), ["lead.mql", "lead.routed"])
                posted = await stack.client.post("/v1/leads", json=GRACE)
                assert posted.status_code == 202, posted.text
                lead_id = posted.json()["lead_id"]

                await eventually(lambda: len(crm.received) == 2, within=60)
                await eventually(lambda: _clock_of(stack, lead_id), within=30)
                trace_id = _header_trace(crm.received[0].headers)
                spans = await eventually(lambda: _complete(otlp, trace_id, topics), within=30)
        finally:
            await others.close()

    server = _one(spans, kind="SERVER")
    assert server.name == "POST /v1/leads" and server.parent_id == ""
    assert server.attributes["http.route"] == "/v1/leads"
    assert server.attributes["http.response.status_code"] == 202
    received = _created(spans, "lead.received")
    assert received.parent_id == server.span_id
    assert received.name == f"create {topics.intake}"
    scoring = _processed(spans, "lead.received", f"{topics.prefix}.scoring")
    assert scoring.parent_id == received.span_id
    assert scoring.attributes["messaging.system"] == "kafka"
    assert scoring.attributes["messaging.destination.name"] == topics.intake
    assert scoring.attributes["cloudevents.event_subject"] == lead_id
    # routing and the handoff after scoring's commit
    for staged in ("lead.scored", "lead.mql", "lead.routed", "lead.qualified"):
        assert _created(spans, staged).parent_id == scoring.span_id, staged
    routed = _created(spans, "lead.routed")
    clock = _processed(spans, "lead.routed", f"{topics.prefix}.sla-monitor")
    assert clock.parent_id == routed.span_id
    started = _all_created(spans, "sla.started")  # a clock per kind the sample policies keep
    assert started and {s.parent_id for s in started} == {clock.span_id}
    for delivered in ("lead.mql", "lead.routed"):
        consumed = _processed(spans, delivered, f"{topics.prefix}.webhooks")
        assert consumed.parent_id == _created(spans, delivered).span_id
        [post] = [
            s
            for s in spans
            if s.kind == "CLIENT" and s.attributes["cloudevents.event_type"] == delivered
        ]
        assert post.parent_id == consumed.span_id and post.name == "POST"
        assert post.attributes["http.response.status_code"] == 200
        assert post.attributes["server.address"] == "127.0.0.1"
        assert post.attributes["leadflow.webhook.attempt"] == 1
        [request] = [r for r in crm.received if r.json()["type"] == delivered]
        # The receiver can join the trace: its parent is the attempt's span.
        assert _named(request.headers["traceparent"]) == (trace_id, post.span_id, True)
        # The CloudEvent in the body carries its own creation context (the extension).
        body_context = _named(request.json()["traceparent"])
        assert body_context == (trace_id, _created(spans, delivered).span_id, True)
    # Every span about the lead is in that one trace.
    about_lead = [
        s for s in otlp.received() if s.attributes.get("cloudevents.event_subject") == lead_id
    ]
    assert {s.trace_id for s in about_lead} == {trace_id}


async def test_a_post_with_a_traceparent_continues_the_callers_trace(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker)
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    with exporting(sample_ratio=0.0) as otlp:  # new traces dropped; the caller's says "sampled"
        async with running_stack(settings) as stack:
            posted = await stack.client.post(
                "/v1/leads",
                json=GRACE,
                headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
            )
            assert posted.status_code == 202, posted.text
            group = f"{settings.topics.prefix}.scoring"
            spans = await eventually(
                lambda: _has(otlp.trace(caller_trace), "lead.received", group), within=60
            )
            [event] = await _events(stack, "lead.received")
            # A CRM's activity on the lead, in a trace of its own caller's.
            crm_trace, crm_span = secrets.token_hex(16), secrets.token_hex(8)
            activity = await stack.client.post(
                f"/v1/leads/{posted.json()['lead_id']}/activities",
                json={"type": "demo_booked"},
                headers={**AUTH, "traceparent": f"00-{crm_trace}-{crm_span}-01"},
            )
            assert activity.status_code in (201, 202), activity.text
            [engaged] = await _events(stack, "lead.activity")
            crm_spans = otlp.trace(crm_trace)
    server = _one(spans, kind="SERVER")
    assert server.parent_id == caller_span
    received = _created(spans, "lead.received")
    assert _named(event["traceparent"]) == (caller_trace, received.span_id, True)
    assert _processed(spans, "lead.received", group).parent_id == received.span_id
    crm_server = _one(crm_spans, kind="SERVER")
    assert crm_server.name == "POST /v1/leads/{lead_id}/activities"
    assert crm_server.parent_id == crm_span
    activity_created = _created(crm_spans, "lead.activity")
    assert activity_created.parent_id == crm_server.span_id
    assert _named(engaged["traceparent"]) == (crm_trace, activity_created.span_id, True)
    # Nothing begun here was recorded (ratio 0): only the callers' traces were.
    assert {s.trace_id for s in otlp.received()} == {caller_trace, crm_trace}


async def test_with_tracing_off_events_carry_no_trace_and_nothing_is_exported(
    db: Database, broker: EmbeddedBroker
) -> None:
    settings = make_settings(db, broker, webhooks=WEBHOOKS)
    otlp = OtlpReceiver().start()
    try:
        assert tracing.configure(settings.tracing, "leadflow-test") is False  # no endpoint
        assert not tracing.active
        webhooks = Runtime.create(settings)
        webhooks.start_relay("webhooks-relay")
        start_webhooks(webhooks)
        try:
            async with Receiver() as crm, running_stack(settings) as stack:
                await _subscribe(stack, crm.url(), ["lead.mql"])
                posted = await stack.client.post("/v1/leads", json=GRACE)
                assert posted.status_code == 202
                [request] = await eventually(lambda: crm.received, within=60)
                events = [e for t in ("lead.received", "lead.mql") for e in await _events(stack, t)]
        finally:
            await webhooks.close()
    finally:
        otlp.stop()
    assert "traceparent" not in request.headers
    assert "traceparent" not in request.json()
    assert len(events) == 2 and not any("traceparent" in e for e in events)
    assert otlp.requests == 0


async def _subscribe(stack: Stack, url: str, types: list[str]) -> None:
    answer = await stack.client.post(
        "/v1/subscriptions", json={"url": url, "event_types": types}, headers=AUTH
    )
    assert answer.status_code == 201, answer.text


async def _clock_of(stack: Stack, lead_id: str) -> SlaClock | None:
    async with stack.intake.sessions() as session:
        return await session.scalar(select(SlaClock).where(SlaClock.lead_id == UUID(lead_id)))


async def _events(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    async with stack.intake.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.type == event_type)
        )
        return [orjson.loads(payload) for payload in rows]


def _header_trace(headers: dict[str, str]) -> str:
    trace_id, _span, sampled = _named(headers["traceparent"])
    assert sampled
    return trace_id


def _named(traceparent: str) -> tuple[str, str, bool]:
    """A W3C traceparent's trace id, parent span id and sampled flag (other flags may be set:
    Trace Context level 2's random trace id)."""
    version, trace_id, span_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, span_id, bool(int(flags, 16) & 1)


def _complete(otlp: OtlpReceiver, trace_id: str, topics: Any) -> list[Span] | None:
    """The trace's spans once every hop the test looks at has been exported."""
    spans = otlp.trace(trace_id)
    group = f"{topics.prefix}."
    wanted = [
        ("lead.received", group + "scoring"),
        ("lead.routed", group + "sla-monitor"),
        ("lead.mql", group + "webhooks"),
        ("lead.routed", group + "webhooks"),
    ]
    done = all(_has(spans, t, g) for t, g in wanted)
    posts = sum(1 for s in spans if s.kind == "CLIENT")
    created = {s.attributes.get("cloudevents.event_type") for s in spans if s.kind == "PRODUCER"}
    return spans if done and posts == 2 and {"sla.started", "lead.qualified"} <= created else None


def _has(spans: Iterable[Span], event_type: str, group: str) -> list[Span] | None:
    spans = list(spans)
    found = any(
        s.kind == "CONSUMER"
        and s.attributes.get("cloudevents.event_type") == event_type
        and s.attributes.get("messaging.consumer.group.name") == group
        for s in spans
    )
    return spans if found else None


def _one(spans: Iterable[Span], **match: str) -> Span:
    [span] = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    return span


def _created(spans: Iterable[Span], event_type: str) -> Span:
    [span] = _all_created(spans, event_type)
    assert span.attributes["messaging.operation.type"] == "create"
    return span


def _all_created(spans: Iterable[Span], event_type: str) -> list[Span]:
    return [
        s
        for s in spans
        if s.kind == "PRODUCER" and s.attributes["cloudevents.event_type"] == event_type
    ]


def _processed(spans: Iterable[Span], event_type: str, group: str) -> Span:
    [span] = [
        s
        for s in spans
        if s.kind == "CONSUMER"
        and s.attributes["cloudevents.event_type"] == event_type
        and s.attributes["messaging.consumer.group.name"] == group
    ]
    assert span.name.startswith("process ")
    return span
