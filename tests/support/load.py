"""The traffic of a fault run: leads posted at a fixed rate (open loop), then what their CRM and
website report about them, each post retried until accepted as a well-behaved client would.

Leads arrive three ways: a JSON post and an HTML form post (``application/x-www-form-urlencoded``)
to ``POST /v1/leads``, and a Google Ads lead-form webhook. Once a lead is accepted, a script drawn
for it (seeded: the same seed, the same scripts) posts its follow-ups a few seconds apart:
nothing (its SLA ladder runs to the end), a call, a page visit, a first response then an
acceptance, a whole deal (responded, accepted, opportunity, booked), or a rejection.

Each post has an ``Idempotency-Key`` (a Google Ads lead its ``lead_id``), kept across its
retries. A connection error, a timeout or a 5xx is retried (a 503 after its ``Retry-After``),
always with the same key: a post whose answer was lost with the process is answered with the
stored answer, not stored twice. A post counts as accepted only on a 2xx. A 5xx other than 503
is retried too (the post must still arrive) but is a failure of the run.

One lead in four is written from a free mailbox without a company: the sample rules do not make
it an MQL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
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
LEAD_KINDS = ("json", "form", "google-ads")
SCRIPTS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "silent": (),
    "call": (("activity", {"type": "call"}),),
    "visit": (("activity", {"type": "pricing_page_visit"}),),
    "responded": (
        ("outcome", {"outcome": "responded"}),
        ("outcome", {"outcome": "accepted"}),
    ),
    "deal": (
        ("outcome", {"outcome": "responded"}),
        ("outcome", {"outcome": "accepted"}),
        ("outcome", {"outcome": "opportunity", "amount": "5000"}),
        ("outcome", {"outcome": "booked", "amount": "4800"}),
    ),
    "rejected": (("outcome", {"outcome": "rejected", "reason": "no_budget"}),),
}
PATHS = {"activity": "activities", "outcome": "outcomes"}
WEIGHTS = {"silent": 30, "call": 20, "visit": 10, "responded": 20, "deal": 10, "rejected": 10}


@dataclass(frozen=True)
class Accepted:
    """A post answered 2xx: what it was and the id the answer named."""

    kind: str
    """``json``, ``form``, ``google-ads``, ``activity`` or ``outcome``."""
    lead_id: str
    stored_id: str
    """The inquiry's, the activity's or the outcome's id."""
    at: float
    """``time.perf_counter()`` at its 2xx."""


@dataclass
class Load:
    intake_url: str
    secret_key: str
    google_key: str
    rate: float
    seed: int = 20
    statuses: Counter[int | str] = field(default_factory=Counter)
    posts: list[Accepted] = field(default_factory=list)
    accepted: dict[str, float] = field(default_factory=dict)
    """Lead id → ``time.perf_counter()`` at its first acceptance."""
    posted: Counter[str] = field(default_factory=Counter)
    """Posts made (each once, however often retried), by kind."""
    scripts: Counter[str] = field(default_factory=Counter)
    abandoned: list[str] = field(default_factory=list)
    """Problems of posts never accepted: the last answer, for the report."""
    replayed: int = 0
    """2xx answers that replayed a stored answer (the first post was stored, its answer lost)."""
    started: float = 0.0
    """``time.perf_counter()`` when the first lead was posted."""
    _in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))

    async def run(self, seconds: float) -> None:
        """Post leads for ``seconds``; return when every post, follow-ups included, is accepted
        or abandoned."""
        limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            leads: list[asyncio.Task[None]] = []
            self.started = time.perf_counter()
            for index in range(int(seconds * self.rate)):
                delay = self.started + index / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # the open loop's pace, not a synchronisation
                leads.append(asyncio.create_task(self._lead(client, index)))
            await asyncio.gather(*leads)

    @property
    def accepted_count(self) -> Counter[str]:
        return Counter(post.kind for post in self.posts)

    @property
    def server_errors(self) -> int:
        """5xx answers other than 503 (which means "the database is away, retry")."""
        return sum(
            n for s, n in self.statuses.items() if isinstance(s, int) and s >= 500 and s != 503
        )

    async def _lead(self, client: httpx.AsyncClient, index: int) -> None:
        rng = random.Random(f"{self.seed}:{index}")  # each lead's own: order-independent
        kind = rng.choices(LEAD_KINDS, weights=(5, 3, 2))[0]
        script = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        lead_id = await self._post_lead(client, kind, index)
        if lead_id is None:
            return
        self.scripts[script] += 1
        for step, body in SCRIPTS[script]:
            await asyncio.sleep(rng.uniform(1.0, 6.0))  # the CRM's pace, not a synchronisation
            url = f"{self.intake_url}/v1/leads/{lead_id}/{PATHS[step]}"
            answer = await self._post(client, step, url, json=body, headers=self._headers())
            if answer is not None:
                self._accepted(step, lead_id, answer[f"{step}_id"])

    async def _post_lead(self, client: httpx.AsyncClient, kind: str, index: int) -> str | None:
        free = index % 4 == 3
        tag = uuid4().hex[:8]
        email = f"chaos.{index}.{tag}@{'gmail.com' if free else 'acme-corp.example'}"
        fields = {"email": email} if free else {"email": email, "company": "Acme"}
        if kind == "json":
            url = f"{self.intake_url}/v1/leads"
            answer = await self._post(client, kind, url, json=fields, headers=self._headers())
        elif kind == "form":
            headers = self._headers() | {"Accept": "application/json"}
            url = f"{self.intake_url}/v1/leads"
            answer = await self._post(client, kind, url, data=fields, headers=headers)
        else:
            url = f"{self.intake_url}/v1/ingest/google-ads"
            answer = await self._post(client, kind, url, json=self._google(fields, tag), headers={})
        if answer is None:
            return None
        lead_id = str(answer["lead_id"])
        self.accepted.setdefault(lead_id, time.perf_counter())
        self._accepted(kind, lead_id, answer["inquiry_id"])
        return lead_id

    def _google(self, fields: dict[str, str], tag: str) -> dict[str, Any]:
        columns = [{"column_id": "EMAIL", "string_value": fields["email"]}]
        if "company" in fields:
            columns.append({"column_id": "COMPANY_NAME", "string_value": fields["company"]})
        return {
            "lead_id": f"gads-{tag}-{uuid4().hex[:12]}",
            "user_column_data": columns,
            "api_version": "1.0",
            "form_id": 42,
            "campaign_id": 7,
            "google_key": self.google_key,
            "is_test": False,
            "adgroup_id": 11,
            "creative_id": 12,
        }

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}", "Idempotency-Key": uuid4().hex}

    def _accepted(self, kind: str, lead_id: str, stored_id: object) -> None:
        self.posts.append(Accepted(kind, lead_id, str(stored_id), time.perf_counter()))

    async def _post(
        self, client: httpx.AsyncClient, kind: str, url: str, **request: Any
    ) -> dict[str, Any] | None:
        """Post until a 2xx (its JSON body) or a refusal or ``GIVE_UP_AFTER_S`` (``None``)."""
        self.posted[kind] += 1
        give_up = time.perf_counter() + GIVE_UP_AFTER_S
        backoff = 0.1
        while True:
            try:
                async with self._in_flight:
                    answer = await client.post(url, **request)
            except httpx.TimeoutException:
                self.statuses[TIMEOUT] += 1
                wait, last = backoff, TIMEOUT
            except httpx.TransportError:
                self.statuses[CONNECTION_ERROR] += 1
                wait, last = backoff, CONNECTION_ERROR
            else:
                self.statuses[answer.status_code] += 1
                if answer.is_success:
                    self.replayed += answer.headers.get("idempotent-replayed") == "true"
                    body: dict[str, Any] = answer.json()
                    return body
                if answer.status_code not in (409, 503) and answer.status_code < 500:
                    self.abandoned.append(f"{kind} {answer.status_code} {answer.text[:200]}")
                    return None
                wait = _retry_after(answer, backoff)
                last = f"{answer.status_code} {answer.text[:200]}"
            if time.perf_counter() + wait > give_up:
                self.abandoned.append(f"{kind} gave up after {GIVE_UP_AFTER_S:.0f}s: {last}")
                return None
            await asyncio.sleep(wait)  # the client's backoff before its retry
            backoff = min(backoff * 2, 1.0)


def _retry_after(answer: httpx.Response, backoff: float) -> float:
    try:
        return float(answer.headers["retry-after"])
    except (KeyError, ValueError):
        return backoff
