"""A delivery attempt with tracing on: a CLIENT span under the message's kept trace, whose
context the request carries as ``traceparent``; an answer that is not a 2xx makes it an error,
and neither the URL's path nor its query is recorded (a Slack webhook's path is its secret)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.webhooks.queue import Claimed
from services.webhooks.sending import make_transport, send
from services.webhooks.settings import WebhookSettings
from tests.support.otlp import exporting
from tests.support.receiver import Receiver, Reply


def _claimed(url: str, traceparent: str | None) -> Claimed:
    return Claimed(
        seq=1,
        id=uuid4(),
        subscription_id=uuid4(),
        event_id=str(uuid4()),
        event_type="lead.mql",
        lead_id=str(uuid4()),
        payload='{"type":"lead.mql"}',
        attempts=2,
        url=url,
        secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        half_open=False,
        traceparent=traceparent,
    )


@pytest.mark.parametrize(("status", "error"), [(200, False), (500, True), (410, True)])
async def test_an_attempt_is_a_client_span_the_receiver_can_join(status: int, error: bool) -> None:
    config = WebhookSettings(allowed_networks=["127.0.0.0/8"])
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    secret_path = f"/services/T0/B0/{secrets.token_hex(12)}"
    with exporting() as otlp:
        async with Receiver(lambda _request: Reply(status)) as crm, make_transport(config) as io:
            claimed = _claimed(crm.url(secret_path) + "?token=x", f"00-{trace_id}-{span_id}-01")
            outcome = await send(io, claimed, config, datetime.now(UTC))
            port = crm.port
        [span] = otlp.trace(trace_id)
    assert outcome.status == status
    assert (span.kind, span.name, span.parent_id) == ("CLIENT", "POST", span_id)
    [request] = crm.received
    assert request.headers["traceparent"].split("-")[1:3] == [trace_id, span.span_id]
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["leadflow.webhook.attempt"] == 3
    assert span.attributes["cloudevents.event_id"] == claimed.event_id
    assert span.attributes["server.port"] == port
    assert span.status == (2 if error else 0)
    if error:
        assert span.attributes["error.type"] == str(status)
    recorded = " ".join(str(v) for v in span.attributes.values())
    assert secret_path not in recorded and "token" not in recorded


async def test_a_message_kept_without_a_trace_begins_one() -> None:
    config = WebhookSettings(allowed_networks=["127.0.0.0/8"])
    with exporting() as otlp:
        async with Receiver() as crm, make_transport(config) as io:
            await send(io, _claimed(crm.url(), None), config, datetime.now(UTC))
        [span] = otlp.received()
    assert span.parent_id == ""
    assert crm.received[0].headers["traceparent"].split("-")[1] == span.trace_id


async def test_off_an_attempt_sends_no_traceparent() -> None:
    config = WebhookSettings(allowed_networks=["127.0.0.0/8"])
    async with Receiver() as crm, make_transport(config) as io:
        await send(
            io,
            _claimed(crm.url(), "00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
            config,
            datetime.now(UTC),
        )
    assert "traceparent" not in crm.received[0].headers
