"""One signed POST to a CRM: the SSRF-guarded transport, the request, and what came back as an
``Outcome``. No database here: the dispatcher claims before and settles after."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime

import httpx
from opentelemetry.trace import Span, Status, StatusCode

from services.webhooks import signing
from services.webhooks.pool import Pool
from services.webhooks.queue import Claimed
from services.webhooks.schedule import Verdict
from services.webhooks.settings import WebhookSettings
from services.webhooks.settle import Outcome
from services.webhooks.ssrf import ForbiddenTarget, GuardedBackend, parse_networks
from shared import tracing

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore runs ``import sniffio`` each time it makes a lock or an event (several times per
    # request); without the package every such import searches sys.path again, which was most
    # of an attempt's CPU. A None entry makes the import fail at once (httpcore then assumes
    # asyncio, which is what runs it here).
    sys.modules["sniffio"] = None  # type: ignore[assignment]


def make_transport(config: WebhookSettings) -> httpx.AsyncHTTPTransport:
    """httpx's transport over a pool (``pool.Pool``) that connects only to addresses the SSRF
    guard accepts (checked at connect time, see ``ssrf``), ignoring proxy variables."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx has no parameter for the pool or httpcore's network backend: swap in ours.
    transport._pool = Pool(  # type: ignore[assignment]  # noqa: SLF001
        network_backend=GuardedBackend(parse_networks(config.allowed_networks)),
        ssl_context=httpx.create_ssl_context(trust_env=False),
        keepalive_expiry=5.0,
        max_idle=config.concurrency,
    )
    return transport


def make_client(config: WebhookSettings) -> httpx.AsyncClient:
    """A client on that transport that follows no redirects (for callers other than ``send``)."""
    transport = make_transport(config)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)


async def send(
    transport: httpx.AsyncBaseTransport, claimed: Claimed, config: WebhookSettings, now: datetime
) -> Outcome:
    """One attempt. The headers carry signatures, never the secret; nothing here logs them.

    The request goes to the transport, not through an ``AsyncClient``: the client's layers are
    redirects (never followed here), cookies (a CRM's cookies must not ride along on the next
    delivery) and auth (none), and they were a fifth of the CPU per delivery.

    With tracing on, the attempt is a CLIENT span in the trace of the event it delivers, and the
    request carries its ``traceparent`` (W3C Trace Context) so that the receiver can join it."""
    headers = signing.headers(claimed.secrets, claimed.event_id, now, claimed.payload)
    if not tracing.active:
        return await _attempt(transport, claimed, config, now, headers)
    span = tracing.client_span("POST", claimed.traceparent, _span_attributes(claimed))
    tracing.inject(span, headers)
    try:
        outcome = await _attempt(transport, claimed, config, now, headers)
    except BaseException as error:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, error.__class__.__name__))
        span.end()
        raise
    _note_outcome(span, outcome)
    span.end()
    return outcome


def _span_attributes(claimed: Claimed) -> dict[str, str | int]:
    """What the attempt's span says: never the URL's path or query, which may be the secret (a
    Slack incoming webhook's path is)."""
    url = httpx.URL(claimed.url)
    return {
        "http.request.method": "POST",
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "url.scheme": url.scheme,
        "cloudevents.event_id": claimed.event_id,
        "cloudevents.event_type": claimed.event_type,
        "leadflow.webhook.message_id": str(claimed.id),
        "leadflow.webhook.subscription_id": str(claimed.subscription_id),
        "leadflow.webhook.attempt": claimed.attempts + 1,
    }


def _note_outcome(span: Span, outcome: Outcome) -> None:
    """The answer's status; a span of an attempt that did not deliver is an error."""
    span.set_attribute("leadflow.webhook.verdict", outcome.verdict.value)
    if outcome.status is not None:
        span.set_attribute("http.response.status_code", outcome.status)
    if outcome.verdict is not Verdict.DELIVERED:
        kind = str(outcome.status) if outcome.status is not None else "no_answer"
        span.set_attribute("error.type", "refused" if outcome.refused else kind)
        span.set_status(Status(StatusCode.ERROR, (outcome.error or "")[:200] or None))


async def _attempt(
    transport: httpx.AsyncBaseTransport,
    claimed: Claimed,
    config: WebhookSettings,
    now: datetime,
    headers: dict[str, str],
) -> Outcome:
    request = httpx.Request(
        "POST",
        claimed.url,
        content=claimed.payload.encode(),
        headers=headers,
        extensions={"timeout": httpx.Timeout(config.timeout_s).as_dict()},
    )
    started = time.perf_counter()

    def outcome(status: int | None = None, **extra: object) -> Outcome:
        elapsed = (time.perf_counter() - started) * 1000
        return Outcome(attempted_at=now, status=status, latency_ms=elapsed, **extra)  # type: ignore[arg-type]

    try:
        async with asyncio.timeout(config.timeout_s):
            response = await transport.handle_async_request(request)
            try:
                body = await _read_at_most(response, config.max_response_bytes)
            finally:
                await response.aclose()
    except ForbiddenTarget as error:
        return outcome(error=f"refused: {error}", refused=True)
    except TimeoutError:
        return outcome(error=f"timed out after {config.timeout_s:g}s")
    except httpx.HTTPError as error:
        return outcome(error=f"{error.__class__.__name__}: {error}"[:500])
    excerpt = body[: config.excerpt_chars * 4].decode(errors="replace")[: config.excerpt_chars]
    problem = None
    if response.is_redirect:
        problem = f"HTTP {response.status_code}: redirects are not followed"
    return outcome(
        response.status_code,
        retry_after=response.headers.get("retry-after"),
        excerpt=excerpt or None,
        error=problem,
    )


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The start of the body; the rest is not read (the connection is dropped if need be)."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)
