"""Leads posted at a fixed rate (open loop), each until accepted, as a well-behaved client would.

Each lead has a unique email and an ``Idempotency-Key``. A 503 is retried after its
``Retry-After``, a connection error (intake killed, or restarting) after a short backoff, always
with the same key: a post whose 202 was lost with the process is then answered with the
stored answer, not stored twice. A 500 is retried too (the lead must still arrive) but is a
failure of the run. Every answer is counted; every accepted lead is kept with when it was.

One lead in four is written from a free mailbox without a company: the sample rules do not make
it an MQL, so the run checks that ``lead.mql`` is delivered exactly for those that are.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from uuid import uuid4

import httpx

GIVE_UP_AFTER_S = 180.0
IN_FLIGHT = 100
"""Posts in flight at once; the others wait their turn here. Without the bound, a stalled intake
queues thousands of requests in httpx's connection pool, which matches every queued request
against every connection each time a request comes or goes (httpcore's
``_assign_requests_to_connections``): the load generator's own event loop then stalled for
minutes, and the timeouts it counted were its own."""
CONNECTION_ERROR = "connection error"
TIMEOUT = "timeout"


@dataclass
class Load:
    url: str
    secret_key: str
    rate: float
    statuses: Counter[int | str] = field(default_factory=Counter)
    accepted: dict[str, float] = field(default_factory=dict)
    """Lead id → ``time.perf_counter()`` at its 202."""
    posted: int = 0
    abandoned: list[str] = field(default_factory=list)
    """Problems of leads never accepted: the last answer, for the report."""
    replayed: int = 0
    """202s that replayed a stored answer (the first post was stored, its answer lost)."""
    started: float = 0.0
    """``time.perf_counter()`` when the first lead was posted."""
    _in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))

    async def run(self, seconds: float) -> None:
        """Post for ``seconds``; return when every lead is accepted or abandoned."""
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            posts: list[asyncio.Task[None]] = []
            self.started = time.perf_counter()
            for index in range(int(seconds * self.rate)):
                delay = self.started + index / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                posts.append(asyncio.create_task(self._post(client, index)))
                self.posted += 1
            await asyncio.gather(*posts)

    async def _post(self, client: httpx.AsyncClient, index: int) -> None:
        body = _lead(index)
        headers = {
            "Authorization": f"Bearer {self.secret_key}",
            "Idempotency-Key": uuid4().hex,
        }
        give_up = time.perf_counter() + GIVE_UP_AFTER_S
        backoff = 0.1
        while True:
            try:
                async with self._in_flight:
                    answer = await client.post(self.url, json=body, headers=headers)
            except httpx.TimeoutException:
                self.statuses[TIMEOUT] += 1
                wait, last = backoff, TIMEOUT
            except httpx.TransportError:
                self.statuses[CONNECTION_ERROR] += 1
                wait, last = backoff, CONNECTION_ERROR
            else:
                self.statuses[answer.status_code] += 1
                if answer.status_code == 202:
                    self.accepted[str(answer.json()["lead_id"])] = time.perf_counter()
                    self.replayed += answer.headers.get("idempotent-replayed") == "true"
                    return
                if answer.status_code not in (409, 503) and answer.status_code < 500:
                    self.abandoned.append(f"{answer.status_code} {answer.text[:200]}")
                    return
                wait = _retry_after(answer, backoff)
                last = f"{answer.status_code} {answer.text[:200]}"
            if time.perf_counter() + wait > give_up:
                self.abandoned.append(f"gave up after {GIVE_UP_AFTER_S:.0f}s: {last}")
                return
            await asyncio.sleep(wait)
            backoff = min(backoff * 2, 1.0)

    @property
    def server_errors(self) -> int:
        """5xx answers other than 503 (which means "the database is away, retry")."""
        return sum(
            n for s, n in self.statuses.items() if isinstance(s, int) and s >= 500 and s != 503
        )


def _lead(index: int) -> dict[str, str]:
    tag = uuid4().hex[:8]
    if index % 4 == 3:
        return {"email": f"chaos.{index}.{tag}@gmail.com"}
    return {"email": f"chaos.{index}.{tag}@acme-corp.example", "company": "Acme"}


def _retry_after(answer: httpx.Response, backoff: float) -> float:
    try:
        return float(answer.headers["retry-after"])
    except (KeyError, ValueError):
        return backoff
