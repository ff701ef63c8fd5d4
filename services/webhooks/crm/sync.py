"""The CRM sync: a CRM subscription's messages sent in batches through the CRM's own API.

The queue is the dispatcher's (``webhook_messages``: one message per lead and event, ordered per
lead, leased by ``claim``); what differs is the sending. A claim takes up to a batch of due
messages of one CRM subscription, at most one per lead (the head of its queue), and one request
upserts them all (HubSpot: 100 contacts; Salesforce: 200 Leads). Each message is then settled by
its own record's result (``settle.settle_batch``): delivered, rejected for good (a property the
CRM refuses: not retried), or retried on the schedule (a rate limit, a locked row, a 5xx).

A batch goes when it is full, or when its first message has waited ``crm_linger_ms`` (so 500
leads/s make five requests a second, not five hundred). Messages this process did not record (a
retry coming due, another process's leftovers after a crash) are found by a poll every
``poll_interval_ms``, which takes only messages due for longer than the linger: it never cuts a
filling batch short. At most ``CONCURRENT`` requests per subscription are in flight; a lead's
next message waits for its previous one to settle, whatever the batches.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhooks.crm import hubspot, links, salesforce
from services.webhooks.crm.config import HubSpotConfig, SalesforceConfig
from services.webhooks.crm.records import Batch, RecordResult, RequestFailure
from services.webhooks.metrics import DISABLED
from services.webhooks.models import CRM_KINDS, HUBSPOT, Subscription
from services.webhooks.queue import Claimed, claim
from services.webhooks.schedule import Verdict
from services.webhooks.sending import make_client
from services.webhooks.settings import WebhooksConfig
from services.webhooks.settle import (
    Outcome,
    Settled,
    Settlement,
    count_exhausted,
    settle_batch,
    until_settled,
)
from services.webhooks.ssrf import ForbiddenTarget
from shared.consumer import is_transient
from shared.outages import describe
from shared.waits import woken

log = logging.getLogger(__name__)

CONCURRENT = 2
"""Requests in flight to one CRM subscription per process."""
MAX_ANSWER_BYTES = 8 * 1024 * 1024
"""A batch's answer is read whole (every record's result is in it), up to this size."""


@dataclass(frozen=True)
class Endpoint:
    """A CRM subscription as the sync needs it (read fresh for each round)."""

    id: UUID
    kind: str
    config: HubSpotConfig | SalesforceConfig
    credentials: Mapping[str, str]

    @property
    def batch_size(self) -> int:
        return self.config.batch_size


class CrmSync:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: WebhooksConfig,
        *,
        on_disabled: Callable[[], None] = lambda: None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.config = settings.webhooks
        self.on_disabled = on_disabled
        self.rand = rand
        self.wakeup = asyncio.Event()
        self.announced: dict[UUID, int] = {}
        """Messages recorded in this process and not claimed since, per subscription."""
        self.first_at: dict[UUID, float] = {}
        """When the oldest of them was announced (monotonic): its batch goes ``linger`` later."""
        self.sizes: dict[UUID, int] = {}
        self.sending: dict[UUID, int] = {}
        self.tokens: dict[UUID, salesforce.Token] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._polled = 0.0

    @property
    def lease(self) -> timedelta:
        """A Salesforce batch may fetch a token and send twice: past both timeouts."""
        return timedelta(seconds=3 * self.config.timeout_s + 30)

    @property
    def linger(self) -> float:
        return self.config.crm_linger_ms / 1000

    @property
    def poll(self) -> float:
        """Between looks for due messages nobody announced."""
        return self.config.poll_interval_ms / 1000

    def recorded(self, batched: Mapping[UUID, int]) -> None:
        """Messages for CRM subscriptions were committed: a full batch goes now, a partial one
        once its first message has lingered."""
        now = time.monotonic()
        for endpoint, count in batched.items():
            self.announced[endpoint] = self.announced.get(endpoint, 0) + count
            self.first_at.setdefault(endpoint, now)
            if self.announced[endpoint] >= self.sizes.get(endpoint, 1):
                self.wakeup.set()

    async def run(self) -> None:
        backoff = 0.0
        async with make_client(self.config) as client:
            try:
                while True:
                    self.wakeup.clear()
                    try:
                        await self._round(client)
                        backoff = 0.0
                    except Exception as error:
                        if not is_transient(error):
                            raise
                        backoff = min(max(backoff * 2, 0.05), 5.0)
                        log.warning("crm sync: claim failed (%s); retrying", describe(error))
                        await asyncio.sleep(backoff)
                        continue
                    await self._idle()
            finally:
                for task in self.tasks:
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _idle(self) -> None:
        """Until the next poll, the next lingering batch, or a wake-up (a full batch announced,
        a request done). A subscription with every request in flight waits for the wake-up."""
        now = time.monotonic()
        due = [
            first + self.linger
            for endpoint, first in self.first_at.items()
            if self.sending.get(endpoint, 0) < CONCURRENT
        ]
        wait = min([self._polled + self.poll, *due]) - now
        if wait <= 0:
            return
        await woken(self.wakeup, wait)

    async def _round(self, client: httpx.AsyncClient) -> None:
        now = time.monotonic()
        poll = now - self._polled >= self.poll
        if poll:
            self._polled = now
        endpoints = await self._endpoints()
        for gone in self.announced.keys() - {e.id for e in endpoints}:  # deleted or disabled
            self.announced.pop(gone)
            self.first_at.pop(gone, None)
        for endpoint in endpoints:
            self.sizes[endpoint.id] = endpoint.batch_size
            if self._ready(endpoint):
                await self._drain(client, endpoint, lingering=False)
            elif poll:
                await self._drain(client, endpoint, lingering=True)

    async def _drain(
        self, client: httpx.AsyncClient, endpoint: Endpoint, *, lingering: bool
    ) -> None:
        """Claim and send batches of ``endpoint`` while they come full and a request is free;
        ``lingering``: only messages due for longer than the linger (a poll's)."""
        while self.sending.get(endpoint.id, 0) < CONCURRENT:
            claimed = await self._claim(endpoint, lingering=lingering)
            self._taken(endpoint.id, len(claimed))
            if not claimed:
                return
            self.sending[endpoint.id] = self.sending.get(endpoint.id, 0) + 1
            task = asyncio.create_task(self._send(client, endpoint, claimed))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            full = len(claimed) == endpoint.batch_size
            if not full or not (lingering or self._ready(endpoint)):
                return  # the rest fills the next batch (or lingers)

    def _ready(self, endpoint: Endpoint) -> bool:
        """A batch of ``endpoint`` may go now: a full one announced, or one that lingered."""
        announced = self.announced.get(endpoint.id, 0)
        first = self.first_at.get(endpoint.id)
        lingered = first is not None and time.monotonic() - first >= self.linger
        return announced >= endpoint.batch_size or (announced > 0 and lingered)

    def _taken(self, endpoint: UUID, count: int) -> None:
        left = self.announced.get(endpoint, 0) - count
        if left > 0 and count:
            self.announced[endpoint] = left
            self.first_at[endpoint] = time.monotonic()
        elif left <= 0 or not count:
            self.announced.pop(endpoint, None)
            self.first_at.pop(endpoint, None)

    async def _endpoints(self) -> list[Endpoint]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Subscription).where(
                    Subscription.enabled.is_(True), Subscription.kind.in_(sorted(CRM_KINDS))
                )
            )
            return [endpoint_of(row) for row in rows]

    async def _claim(self, endpoint: Endpoint, *, lingering: bool) -> list[Claimed]:
        """Up to a batch of due messages. ``lingering`` (a poll's): only if one has been due for
        longer than the linger, and then with whatever else is due, to fill the batch."""
        now = datetime.now(UTC)
        async with self.sessions.begin() as session:

            async def take(limit: int, due_by: datetime) -> list[Claimed]:
                return await claim(
                    session,
                    now=now,
                    limit=limit,
                    lease=self.lease,
                    in_flight={},
                    per_endpoint=endpoint.batch_size,
                    threshold=self.config.breaker_failures,
                    endpoints=[endpoint.id],
                    kind=endpoint.kind,
                    due_by=due_by,
                )

            if not lingering:
                return await take(endpoint.batch_size, now)
            claimed = await take(endpoint.batch_size, now - timedelta(seconds=self.linger))
            room = endpoint.batch_size - len(claimed)
            if claimed and room > 0 and not claimed[0].half_open:
                claimed += await take(room, now)  # its leases exclude what it took already
            return claimed

    async def _send(
        self, client: httpx.AsyncClient, endpoint: Endpoint, claimed: list[Claimed]
    ) -> None:
        try:
            request, settled, found = await self._exchange(client, endpoint, claimed)
            await asyncio.shield(self._settle(endpoint, request, settled, found))
        except asyncio.CancelledError:
            raise
        except Exception:  # one batch's trouble must not stop the others; its leases expire
            log.exception("crm sync: batch of %d for subscription %s failed", len(claimed),
                          endpoint.id)  # fmt: skip
        finally:
            self.sending[endpoint.id] -= 1
            self.wakeup.set()

    async def _exchange(
        self, client: httpx.AsyncClient, endpoint: Endpoint, claimed: list[Claimed]
    ) -> tuple[Outcome, list[Settled], dict[str, str]]:
        """One batch request (a Salesforce session that expired is renewed and the request sent
        once more), what became of each message, and the CRM's record id of each lead sent."""
        items = [(c.id, orjson.loads(c.payload)) for c in claimed]
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()

        def outcome(status: int | None = None, **extra: Any) -> Outcome:
            elapsed = (time.perf_counter() - started) * 1000
            return Outcome(attempted_at=attempted_at, status=status, latency_ms=elapsed, **extra)

        try:
            batch, response, body = await self._request(client, endpoint, items)
        except ForbiddenTarget as error:
            request = outcome(error=f"refused: {error}", refused=True)
            return request, [Settled(c, Verdict.REFUSED, request.error) for c in claimed], {}
        except (httpx.HTTPError, TimeoutError, CrmRefused, salesforce.TokenError) as error:
            message = str(error) or error.__class__.__name__
            if isinstance(error, TimeoutError):
                message = f"timed out after {self.config.timeout_s:g}s"
            request = outcome(error=message[:500])
            return request, [Settled(c, Verdict.RETRY, request.error) for c in claimed], {}
        if response is None:  # no record could be sent
            request = outcome(200)
            return request, [_record(c, batch.skipped.get(c.id)) for c in claimed], {}
        excerpt = body[: self.config.excerpt_chars].decode(errors="replace") or None
        if response.status_code in (200, 201, 207):
            parse = hubspot.parse_upsert if endpoint.kind == HUBSPOT else salesforce.parse_upsert
            results = {**batch.skipped, **parse(response.status_code, body, batch)}
            request = outcome(response.status_code, excerpt=excerpt)
            settled = [_record(c, results.get(c.id)) for c in claimed]
            return request, settled, _record_ids(claimed, results)
        failed = self._failure(endpoint, response, body)
        retry_after = str(round(failed.wait_s)) if failed.wait_s is not None else None
        request = outcome(
            response.status_code, error=failed.message[:500], excerpt=excerpt,
            retry_after=retry_after,
        )  # fmt: skip
        verdict = request.verdict if failed.retry else Verdict.REJECTED
        if verdict is Verdict.DELIVERED:
            verdict = Verdict.RETRY
        return request, [Settled(c, verdict, request.error) for c in claimed], {}

    async def _request(
        self, client: httpx.AsyncClient, endpoint: Endpoint, items: list[tuple[UUID, Any]]
    ) -> tuple[Batch, httpx.Response | None, bytes]:
        """The batch and the CRM's answer (None: no record could be sent, nothing asked)."""
        if isinstance(endpoint.config, HubSpotConfig):
            batch = hubspot.build_upsert(endpoint.config, items)
            auth = f"Bearer {endpoint.credentials.get('token', '')}"
            response, body = await self._call(client, batch, auth)
            return batch, response, body
        config = endpoint.config
        for renewed in (False, True):
            token = await self._token(client, endpoint, renew=renewed)
            batch = salesforce.build_upsert(config, token.instance_url, items)
            response, body = await self._call(client, batch, f"Bearer {token.access_token}")
            if response is None or renewed:
                return batch, response, body
            if not salesforce.session_expired(response.status_code, body):
                return batch, response, body
        raise AssertionError("unreachable")

    async def _call(
        self, client: httpx.AsyncClient, batch: Batch, auth: str
    ) -> tuple[httpx.Response | None, bytes]:
        if not batch.included:
            return None, b""
        headers = {**batch.headers, "Authorization": auth}
        async with asyncio.timeout(self.config.timeout_s):
            request = client.build_request(batch.method, batch.url, json=batch.json,
                                           headers=headers)  # fmt: skip
            response = await client.send(request, stream=True)
            try:
                body = await _read(response)
            finally:
                await response.aclose()
        return response, body

    async def _token(
        self, client: httpx.AsyncClient, endpoint: Endpoint, *, renew: bool
    ) -> salesforce.Token:
        """The subscription's Salesforce access token: kept in memory, fetched with the client
        credentials flow when there is none or it was refused (``renew``)."""
        if not renew and endpoint.id in self.tokens:
            return self.tokens[endpoint.id]
        self.tokens.pop(endpoint.id, None)
        assert isinstance(endpoint.config, SalesforceConfig)
        url, form = salesforce.token_request(
            endpoint.config, endpoint.credentials.get("client_secret", "")
        )
        async with asyncio.timeout(self.config.timeout_s):
            response = await client.post(url, data=form)
        if response.status_code != 200:
            raise CrmRefused(
                f"Salesforce token request answered HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        token = salesforce.parse_token(response.content)
        self.tokens[endpoint.id] = token
        return token

    def _failure(self, endpoint: Endpoint, response: httpx.Response, body: bytes) -> RequestFailure:
        module = hubspot if endpoint.kind == HUBSPOT else salesforce
        return module.request_failed(response.status_code, response.headers, body)

    async def _settle(
        self, endpoint: Endpoint, request: Outcome, settled: list[Settled], found: dict[str, str]
    ) -> None:
        async def work(session: AsyncSession) -> Settlement:
            now = datetime.now(UTC)
            # The subscription's row first (settle_batch locks it), then the links, whose
            # foreign key share-locks it: two settlements cannot deadlock.
            settlement = await settle_batch(
                session, request, settled, settings=self.settings, now=now, rand=self.rand
            )
            await links.remember(session, endpoint.id, found, now=now)
            return settlement

        settlement = await until_settled(self.sessions, work, who="crm sync")
        count_exhausted(settlement)
        if settlement.disabled:
            DISABLED.inc()
            log.warning("crm sync: subscription %s disabled", settled[0].claimed.subscription_id)
            self.on_disabled()


class CrmRefused(Exception):
    """The CRM would not let us in (a token request refused): the batch is retried."""


def endpoint_of(row: Subscription) -> Endpoint:
    config: HubSpotConfig | SalesforceConfig
    if row.kind == HUBSPOT:
        config = HubSpotConfig.model_validate(row.crm or {})
    else:
        config = SalesforceConfig.model_validate(row.crm or {})
    return Endpoint(row.id, row.kind, config, dict(row.credentials or {}))


def _record(claimed: Claimed, result: RecordResult | None) -> Settled:
    if result is None:
        return Settled(claimed, Verdict.RETRY, "the CRM's answer had no result for this record")
    if result.ok:
        return Settled(claimed, Verdict.DELIVERED, result.note)
    verdict = Verdict.RETRY if result.retry else Verdict.REJECTED
    return Settled(claimed, verdict, result.error)


def _record_ids(claimed: list[Claimed], results: Mapping[UUID, RecordResult]) -> dict[str, str]:
    """Lead id → the CRM's record id, for the records it took."""
    return {
        c.lead_id: result.record_id
        for c in claimed
        if (result := results.get(c.id)) is not None and result.ok and result.record_id
    }


async def _read(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise httpx.DecodingError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
    return b"".join(chunks)
