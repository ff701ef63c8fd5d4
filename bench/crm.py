"""``python -m bench.crm [--rate R] [--seconds S] [--rate-limit-every K]``: CRM batching (issue 18).

The production pipeline of ``bench.webhooks`` (PostgreSQL, the embedded broker, ``leadflow
intake``, ``scoring`` and ``webhooks`` as processes) with routing on (``leadflow dev``'s sample
team, rules and SLA policies) and one HubSpot subscription pointed at a HubSpot-shaped server run
here: ``POST /crm/v3/objects/contacts/batch/upsert``, Bearer token, 1 to 100 inputs upserted by
email, answered 200 with ``results`` as HubSpot documents them (no ``objectWriteTraceId`` echoed:
HubSpot's example has none, so the sync matches them by email). Leads carrying consent are posted
at ``--rate`` (open loop); each one's ``lead.qualified`` becomes a contact upsert.

Measured: requests per second over the steady window (the measured posting window shifted by the
p50 latency, so it holds the same leads), inputs per request, the requests not answered 2xx
(retries; ``--rate-limit-every K`` answers every K-th request 429 with ``Retry-After``) and the
latency from the intake's 202 to the contact's arrival. The target: at most rate/100 × (1 +
retries/s ÷ requests/s) requests a second.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import uvloop
from rich.table import Table
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.servers import services_ready
from bench.suite import machine_pace, quantile
from bench.webhooks import (
    QUALIFIED,
    Pipeline,
    Posted,
    Timings,
    console,
    cpu_table,
    pipeline_arguments,
    post_leads,
    prepare,
    print_pace,
    rich_lead,
    running_pipeline,
    stage_timings,
    stages_of,
    stages_table,
    wait_for,
)
from services.routing.main import SAMPLE_OWNERS
from services.webhooks.models import WebhookMessage
from services.webhooks.schemas import SubscriptionIn

TOKEN = "pat-bench-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
BATCH = 100
"""HubSpot's most inputs per batch upsert, and the subscription's batch size."""


# --------------------------------------------------------------------------- the HubSpot side


@dataclass(frozen=True, slots=True)
class Request:
    at: float
    """``perf_counter`` when the body had arrived."""
    status: int
    inputs: int


@dataclass
class HubSpotServer:
    """The batch upsert on 127.0.0.1 (asyncio streams, keep-alive): checks the token and the
    body's shape as HubSpot would (a request it refuses is a 400 and counted as a problem), keeps
    contacts by email and records every request and each contact's first arrival."""

    rate_limit_every: int = 0
    retry_after: int = 1
    requests: list[Request] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)
    """Email → when the first request that upserted it arrived (answered 200)."""
    problems: list[str] = field(default_factory=list)
    contacts: dict[str, str] = field(default_factory=dict)
    owned: int = 0
    limited: dict[str, float] = field(default_factory=dict)
    """Email → when a request carrying it was first answered 429."""
    """Inputs that set ``hubspot_owner_id`` (the routed owner, mapped)."""
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, extra, answer = self.answer(method, path, headers, body)
                writer.write(_encode(status, extra, answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        at = time.perf_counter()
        if method != "POST" or path != UPSERT:
            return self._refuse(at, 404, "OBJECT_NOT_FOUND", f"no route for {method} {path}")
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return self._refuse(at, 401, "INVALID_AUTHENTICATION", "no valid token")
        try:
            inputs = orjson.loads(body)["inputs"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._refuse(at, 400, "VALIDATION_ERROR", "Invalid input JSON")
        if (problem := _problem(inputs)) is not None:
            return self._refuse(at, 400, "VALIDATION_ERROR", problem)
        if self.rate_limit_every and (len(self.requests) + 1) % self.rate_limit_every == 0:
            self.requests.append(Request(at, 429, len(inputs)))
            for item in inputs:
                self.limited.setdefault(item["id"].strip().lower(), at)
            return 429, {"Retry-After": str(self.retry_after), **_limits(0)}, RATE_LIMITED
        self.requests.append(Request(at, 200, len(inputs)))
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        results = [self._upsert(item, at, now) for item in inputs]
        answer = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
        return 200, _limits(99), orjson.dumps(answer)

    def _upsert(self, item: dict[str, Any], at: float, now: str) -> dict[str, Any]:
        email = item["id"].strip().lower()
        self.arrived.setdefault(email, at)
        created = email not in self.contacts
        self.owned += "hubspot_owner_id" in item["properties"]
        record = self.contacts.setdefault(email, str(1001 + len(self.contacts)))
        properties = {**item["properties"], "email": email, "hs_object_id": record}
        return {
            "id": record,
            "properties": properties | {"createdate": now, "lastmodifieddate": now},
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
            "new": created,
        }

    def _refuse(
        self, at: float, status: int, category: str, message: str
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(Request(at, status, 0))
        self.problems.append(f"{status} {category}: {message}")
        answer = {"status": "error", "message": message, "category": category}
        return status, {}, orjson.dumps(answer | {"correlationId": str(uuid4())})


RATE_LIMITED = orjson.dumps(
    {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "00000000-0000-0000-0000-000000000000",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
)


def _problem(inputs: Any) -> str | None:
    """What HubSpot would refuse in a batch upsert's ``inputs`` (None: nothing)."""
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= BATCH:
        return f"inputs must be a list of 1 to {BATCH} inputs"
    ids = set()
    for item in inputs:
        if not isinstance(item, dict) or item.get("idProperty") != "email":
            return "each input needs idProperty email"
        if not isinstance(item.get("id"), str) or "@" not in item["id"]:
            return f"id must be an email: {item.get('id')!r}"
        properties = item.get("properties")
        if not isinstance(properties, dict) or not all(
            isinstance(v, str) for v in properties.values()
        ):
            return "properties must be an object of strings"
        ids.add(item["id"].strip().lower())
    return None if len(ids) == len(inputs) else "Duplicate IDs found in batch input"


def _limits(remaining: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json;charset=UTF-8",
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": str(remaining),
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
    }


def _encode(status: int, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    posted: Posted
    server: HubSpotServer
    arrived: dict[str, float]
    """Measured lead id → its contact's arrival (``perf_counter``)."""
    timings: Timings
    burst: tuple[int, int, float]
    """Contacts queued at once, those received, seconds to drain them."""


async def _run(args: argparse.Namespace, pipeline: Pipeline) -> Run:
    server = HubSpotServer(args.rate_limit_every, args.retry_after)
    await server.start()
    try:
        owners = {email: str(41629779 + i) for i, (email, _) in enumerate(SAMPLE_OWNERS)}
        body = SubscriptionIn(
            kind="hubspot",
            hubspot={"base_url": server.base_url, "owners": owners},
            credentials={"token": TOKEN},
            description="bench.crm",
        )
        subscription = await prepare(pipeline, body, routing=True)
        await services_ready(pipeline.ports)
        tag = uuid4().hex[:8]
        posted = await post_leads(args, pipeline, lambda index: rich_lead(index, tag))
        emails = {lead: rich_lead(i, tag)["email"].lower() for lead, i in posted.index.items()}
        await wait_for(lambda: all(e in server.arrived for e in emails.values()), 60)
        arrived = {k: server.arrived[e] for k, e in emails.items() if e in server.arrived}
        clock = time.time() - time.perf_counter()
        timings = await stage_timings(
            pipeline.db_url,
            QUALIFIED,
            stages_of(QUALIFIED, receiver="HubSpot server", sender="CRM sync's"),
            posted.wall(),
            {k: at + clock for k, at in arrived.items()},
        )
        server.rate_limit_every = 0  # the sync's capacity, not its retries
        burst = await _burst(args.burst, server, pipeline.db_url, subscription)
    finally:
        await server.stop()
    return Run(posted, server, arrived, timings, burst)


async def _burst(
    count: int, server: HubSpotServer, db_url: str, subscription: UUID
) -> tuple[int, int, float]:
    """The CRM sync's capacity: ``count`` copies of a delivered ``lead.qualified`` (new emails)
    queued at once, already lingered; the time until the server has them all."""
    if count <= 0:
        return 0, 0, math.nan
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as connection:
            query = select(WebhookMessage.payload).where(
                WebhookMessage.subscription_id == subscription
            )
            document = orjson.loads((await connection.execute(query.limit(1))).scalar_one())
            due = datetime.now(UTC) - timedelta(seconds=10)
            emails = [f"burst{i}.{uuid4().hex[:8]}@acme-corp.example" for i in range(count)]
            rows = [_copy(document, subscription, email, due) for email in emails]
            await connection.execute(insert(WebhookMessage), rows)
        async with engine.begin() as connection:  # as autovacuum would soon after a bulk insert
            await connection.execute(text("ANALYZE webhook_messages"))
    finally:
        await engine.dispose()
    before, started = len(server.requests), time.perf_counter()
    await wait_for(lambda: all(e in server.arrived for e in emails), 120)
    elapsed = time.perf_counter() - started
    return count, len(server.requests) - before, elapsed


def _copy(
    document: dict[str, Any], subscription: UUID, email: str, due: datetime
) -> dict[str, Any]:
    lead = uuid4()
    contact = {**document["data"]["contact"], "email": email}
    body = {**document, "subject": str(lead), "data": {**document["data"], "contact": contact}}
    return {
        "id": uuid4(),
        "subscription_id": subscription,
        "event_id": str(uuid4()),
        "event_type": QUALIFIED,
        "lead_id": str(lead),
        "payload": orjson.dumps(body).decode(),
        "status": "pending",
        "attempts": 0,
        "due_at": due,
        "created_at": due,
    }


@dataclass(frozen=True)
class Window:
    """The steady window's figures."""

    seconds: float
    posted_per_s: float
    requests: list[Request]

    @property
    def requests_per_s(self) -> float:
        return len(self.requests) / self.seconds

    @property
    def retries_per_s(self) -> float:
        return self.retries / self.seconds

    @property
    def retries(self) -> int:
        return sum(1 for r in self.requests if not 200 <= r.status < 300)

    @property
    def contacts(self) -> int:
        return sum(r.inputs for r in self.requests if 200 <= r.status < 300)

    @property
    def bound(self) -> float:
        """rate/100 × (1 + retries/s ÷ requests/s): the target's most requests a second."""
        share = self.retries / len(self.requests) if self.requests else 0.0
        return self.posted_per_s / BATCH * (1 + share)

    @property
    def keeps_up(self) -> bool:
        """The contacts arrived as fast as the leads were posted (within 5 %)."""
        return self.contacts / self.seconds >= 0.95 * self.posted_per_s

    @property
    def met(self) -> bool:
        return self.keeps_up and self.requests_per_s <= self.bound


def steady_window(run: Run, latencies: list[float]) -> Window:
    """The measured posting window shifted by the p50 latency (the same leads' requests)."""
    start, end = run.posted.window
    shift = quantile(latencies, 0.5) / 1000 if latencies else 0.0
    seconds = end - start
    inside = [r for r in run.server.requests if start + shift <= r.at < end + shift]
    return Window(seconds, len(run.posted.accepted) / seconds, inside)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crm", description=__doc__)
    pipeline_arguments(parser, rate=500.0, seconds=20.0)
    parser.add_argument(
        "--rate-limit-every",
        type=int,
        default=0,
        metavar="K",
        help="answer every K-th request 429 (HubSpot's rate limit); 0: never (default)",
    )
    parser.add_argument(
        "--retry-after", type=int, default=1, help="the 429's Retry-After, seconds (1)"
    )
    parser.add_argument(
        "--burst", type=int, default=5000, help="contacts queued at once afterwards (5000; 0: none)"
    )
    args = parser.parse_args(argv)
    pace = [machine_pace()]
    with running_pipeline(args.pg_url) as pipeline:
        run = uvloop.run(_run(args, pipeline))
        cpu = pipeline.cpu
    pace.append(machine_pace())
    latencies = sorted((run.arrived[k] - t) * 1000 for k, t in run.posted.accepted.items()
                       if k in run.arrived)  # fmt: skip
    window = steady_window(run, latencies)
    _report(args, run, latencies, window, pace)
    for item in cpu_table(cpu, len(run.posted.accepted), run.timings):
        console.print(item)
    console.print(stages_table(run.timings))
    complete = len(run.arrived) == len(run.posted.accepted)
    return 0 if complete and window.met and not run.server.problems else 1


def _report(
    args: argparse.Namespace, run: Run, latencies: list[float], window: Window, pace: list[float]
) -> None:
    server, posted = run.server, run.posted
    sizes = [r.inputs for r in window.requests]
    ok = [r for r in server.requests if 200 <= r.status < 300]
    table = Table(title="CRM handoff: 202 → HubSpot batch upsert (lead.qualified, rich leads)")
    for heading in ("measure", "steady window", "whole run"):
        table.add_column(heading, justify="left" if heading == "measure" else "right")
    total = int(args.rate * (args.warmup + args.seconds))
    rows = (
        ("leads posted", f"{len(posted.accepted):,} ({window.posted_per_s:,.0f}/s)",
         f"{total:,} at {posted.rate:,.0f}/s"),
        ("contacts received", f"{window.contacts:,} ({window.contacts / window.seconds:,.0f}/s)",
         f"{len(server.arrived):,} ({len(run.arrived):,} of the measured)"),
        ("requests", f"{len(window.requests):,}", f"{len(server.requests):,}"),
        ("requests/s", f"[bold]{window.requests_per_s:.2f}[/bold]", ""),
        ("retries (not 2xx)", f"{window.retries:,} ({window.retries / window.seconds:.2f}/s)",
         f"{len(server.requests) - len(ok):,}"),
        ("inputs per request, mean / max", _sizes(sizes), _sizes([r.inputs for r in ok])),
        ("requests of 100 / 50–99 / 1–49 inputs", _buckets(sizes),
         _buckets([r.inputs for r in server.requests])),
        ("contacts with an owner id", "", f"{server.owned:,} of {sum(r.inputs for r in ok):,}"),
    )  # fmt: skip
    for row in rows:
        table.add_row(*row)
    console.print(table)
    verdict = "[green]met[/green]" if window.met else "[bold red]NOT met[/bold red]"
    console.print(
        f"  target: ≤ {window.posted_per_s:,.0f}/100 × (1 + {window.retries_per_s:.2f} ÷ "
        f"{window.requests_per_s:.2f}) = {window.bound:.2f} requests/s while the contacts keep "
        f"up with the leads; measured {window.requests_per_s:.2f} requests/s, "
        f"{window.contacts / window.seconds:,.0f} contacts/s: {verdict} (steady window: the "
        f"measured {window.seconds:.1f} s of posting, shifted by the p50 latency)"
    )
    if not window.keeps_up:
        console.print(
            "  [bold]the pipeline fell behind[/bold] (contacts < 95 % of the leads posted, per "
            "second): the request rate then understates the one at the posted rate; requests per "
            f"{BATCH} contacts (below) is the batching's measure"
        )
    console.print(
        f"  202 → contact at the HubSpot server: p50 {quantile(latencies, 0.5):.1f} ms, "
        f"p90 {quantile(latencies, 0.9):.1f}, p99 {quantile(latencies, 0.99):.1f}, "
        f"max {max(latencies, default=float('nan')):.1f} ms"
    )
    if server.problems:
        console.print(f"  [bold red]refused requests[/bold red]: {server.problems[:3]}")
    if server.limited:
        _report_retries(server, args.retry_after)
    ideal = window.posted_per_s / BATCH
    per_100 = len(window.requests) / (window.contacts / BATCH) if window.contacts else math.nan
    console.print(
        f"  requests/s ÷ the fewest possible (posted/s ÷ {BATCH} = {ideal:.2f}): "
        f"[bold]{window.requests_per_s / ideal:.3f}[/bold]; requests per {BATCH} contacts "
        f"received [bold]{per_100:.2f}[/bold] (the fewest: 1)"
    )
    queued, requests, elapsed = run.burst
    if queued:
        console.print(
            f"  CRM sync's capacity: {queued:,} contacts queued at once reached the server in "
            f"{elapsed:.2f} s = [bold]{queued / elapsed:,.0f} contacts/s[/bold], {requests} "
            "requests"
        )
    console.print(f"  intake answers: {posted.statuses}")
    print_pace(pace)


def _report_retries(server: HubSpotServer, retry_after: int) -> None:
    """Whether the 429s' ``Retry-After`` was honoured: when their contacts came again (never
    sooner than it, if honoured; the retry schedule may add to it)."""
    again = [server.arrived[e] - at for e, at in server.limited.items() if e in server.arrived]
    limits = sum(1 for r in server.requests if r.status == 429)
    console.print(
        f"  429s (Retry-After {retry_after} s): {limits} requests, {len(server.limited):,} "
        f"contacts in them; {len(again):,} came again after p50 {quantile(again, 0.5):.2f} s, "
        f"min {min(again, default=math.nan):.2f} s, max {max(again, default=math.nan):.2f} s "
        f"({sum(1 for a in again if a < retry_after):,} sooner than Retry-After); "
        f"{len(server.limited) - len(again):,} had not come again by the run's end"
    )


def _sizes(sizes: list[int]) -> str:
    return f"{statistics.fmean(sizes):.1f} / {max(sizes)}" if sizes else "–"


def _buckets(sizes: list[int]) -> str:
    full = sizes.count(BATCH)
    half = sum(1 for n in sizes if BATCH // 2 <= n < BATCH)
    return f"{full} / {half} / {len(sizes) - full - half}"


if __name__ == "__main__":
    raise SystemExit(main())
