"""Scoring end to end: ``lead.received`` events through the broker into ONE scoring process.

A fresh PostgreSQL database gets N leads with their inquiries and the 30-rule bench ruleset as
the active version, and the routing directory of ``bench.routing`` (4 teams, 20 reps with hours,
caps and the fairness ledger, 2,000 customer accounts, 10 co-signed routing rules); the N
``lead.received`` events (inquiries of the last seconds) are produced to the intake topic of an
embedded broker (``shared.broker.EmbeddedBroker``) before scoring starts. Then this process runs
what ``leadflow scoring`` runs — the real ``EventConsumer`` with the ``ScoringHandler`` (each
batch in one transaction: dedupe, lock, activities, qualify, lead state, history, transitions,
outbox, the leads that qualify marked pending), the routing of those right after each commit
(``PendingRouter``) and the outbox relay publishing what scoring and routing emit.

Two clocks, both from the first batch committed: to the last batch committed ("scored"), and to
the moment the relay has published every event scoring staged ("scored and published", the rate
the process sustains: every lead routed too). Routing's share: per routing round (its whole
transaction: take the pending leads, route, commit), the time divided by the leads it routed
(p50/p99 over rounds). CPU is this process's (the scoring process) and the database backends'.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import uvloop
from sqlalchemy import insert, text
from sqlalchemy.engine import URL

from bench.intake import _dsn, bench_database
from bench.loadgen import CpuProbe, _cpu_ticks
from bench.routing import routing_directory
from bench.suite import Check, Log
from services.processes import RoutingAfterScoring
from services.routing import pending
from services.scoring import versions
from services.scoring.handlers import ScoringHandler
from services.scoring.main import CONSUMER
from services.settings import load_settings
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.consumer import EventConsumer
from shared.events import LeadReceived, LeadReceivedData
from shared.ids import new_id
from shared.kafka import ensure_topics, make_producer
from shared.models import Inquiry, Lead
from shared.runtime import Runtime
from shared.serve import freeze_heap

SOURCE = "/leadflow/intake"


@dataclass(frozen=True)
class Result:
    leads: int
    batches: int
    seconds: float  # first batch committed → last batch committed
    rate: float  # leads/s over that window (the first batch excluded: it starts the clock)
    sustained_seconds: float  # first batch committed → every staged event published
    sustained: float  # leads/s over that window
    routed: int  # leads routed (qualified in this run)
    routing_ms: list[tuple[float, int]]  # per routing round: (its time / leads it routed, leads)
    cpu: dict[str, float]  # average cores busy over the window
    scored: int
    outbox: int
    published: int


@contextlib.contextmanager
def embedded_broker(log: Log) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        log(f"  embedded broker on {broker.bootstrap_servers}")
        yield broker


def run_e2e(pg_url: str, count: int, ruleset: str, log: Log, *, routing: bool = True) -> Result:
    with embedded_broker(log) as broker, bench_database(pg_url, log) as url:
        settings = load_settings(
            db={"url": _dsn(url)},
            kafka={"bootstrap_servers": broker.bootstrap_servers, "idempotence": False},
            topics={"prefix": f"bench{uuid4().hex[:8]}"},
        )
        # On uvloop, as ``leadflow scoring`` runs (services.cli.run_loop).
        return uvloop.run(_run(settings, url, count, ruleset, log, routing=routing))


async def _run(
    settings: Settings, url: URL, count: int, ruleset: str, log: Log, *, routing: bool
) -> Result:
    runtime = Runtime.create(settings)
    try:
        log(f"  loading {count:,} leads, inquiries and the active 30-rule ruleset")
        events = await _load(runtime, settings, count, ruleset, routing=routing)
        log(f"  producing {count:,} lead.received events to {settings.topics.intake}")
        await _produce(settings, events)
        del events  # the scoring process never holds them: keep its heap as it would be
        return await _score(runtime, settings, url, count, log)
    finally:
        await runtime.close()


async def _load(
    runtime: Runtime, settings: Settings, count: int, ruleset: str, *, routing: bool
) -> list[LeadReceived]:
    """The leads, the active ruleset and, with ``routing``, the routing directory (without a
    team, routing is off and qualified leads stay unassigned: scoring's work alone)."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    leads, inquiries, events = [], [], []
    for i in range(count):
        lead_id, inquiry_id = new_id(), new_id()
        at = now - timedelta(milliseconds=count - i)  # inquiries that just arrived
        submission = _submission(rng, i)
        leads.append(
            {
                "id": lead_id,
                "email": submission["email"],
                "phone": submission.get("phone"),
                "first_name": submission["first_name"],
                "last_name": submission["last_name"],
                "company": submission.get("company"),
                "source": submission["source"],
                "stage": "inquiry",
                "created_at": at,
                "updated_at": at,
            }
        )
        inquiries.append(
            {
                "id": inquiry_id,
                "lead_id": lead_id,
                "source": submission["source"],
                "received_at": at,
                "submission": submission,
            }
        )
        data = LeadReceivedData(
            lead_id=lead_id, inquiry_id=inquiry_id, source=submission["source"], new_lead=True
        )
        events.append(LeadReceived.about_lead(lead_id, data, source=SOURCE, time=at))
    async with runtime.sessions.begin() as session:
        for start in range(0, count, 5000):
            await session.execute(insert(Lead), leads[start : start + 5000])
            await session.execute(insert(Inquiry), inquiries[start : start + 5000])
        await versions.bootstrap(session, settings, ruleset, now=now)
        if routing:
            await routing_directory(session, settings)
    async with runtime.sessions.begin() as session:  # as autovacuum soon would after a bulk load
        await session.execute(text("ANALYZE"))
    return events


def _submission(rng: random.Random, i: int) -> dict[str, Any]:
    domain = rng.choice(["acme.com", "globex.io", "gmail.com", "initech.de", "uni.edu"])
    return {
        "email": f"lead{i}@{domain}",
        "first_name": rng.choice(["Ada", "Grace", "Alan", "Edsger"]),
        "last_name": rng.choice(["Lovelace", "Hopper", "Turing", ""]) + str(i),
        "phone": rng.choice([None, f"+1415555{i % 10000:04d}"]),
        "company": rng.choice([None, f"Company {i}", f"Globex Corporation {i}"]),
        "title": rng.choice(["vp sales", "head of it", "director", "founder", "student", ""]),
        "country": rng.choice(["US", "DE", "GB", "BR", "FR"]),
        "industry": rng.choice(["software", "saas", "retail", "fintech"]),
        "employees": rng.choice([5, 60, 250, 1500, 9000]),
        "source": rng.choice(["web", "ads", "google-ads"]),
        "language": rng.choice(["en", "en", "de", "ja"]),
        "product": rng.choice(["platform", "api"]),
    }


async def _produce(settings: Settings, events: list[LeadReceived]) -> None:
    topics = settings.topics
    await ensure_topics(settings.kafka, [topics.intake, topics.lifecycle, topics.dead_letter])
    producer = make_producer(settings.kafka)
    await producer.start()
    try:
        pending = [
            await producer.send(topics.intake, event.encode(), key=event.key.encode())
            for event in events
        ]
        await producer.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _score(runtime: Runtime, settings: Settings, url: URL, count: int, log: Log) -> Result:
    # Routing plugged in as services/processes.py does (start_scoring_with_routing).
    router = pending.PendingRouter(runtime.sessions, settings, on_routed=runtime.notify_relay)
    routed = RoutingAfterScoring(router)
    handler = _Counting(ScoringHandler(settings, after_scoring=[routed]))
    commits: list[tuple[float, int]] = []  # (when, leads scored so far), after each commit
    first, done = asyncio.Event(), asyncio.Event()

    def committed() -> None:  # as start_scoring's
        commits.append((time.perf_counter(), handler.seen))
        first.set()
        runtime.notify_relay()
        if handler.seen >= count:
            done.set()

    routing = _RoutingClock()
    routing.install()
    runtime.start_relay("scoring-relay")
    consumer = EventConsumer(
        name=CONSUMER,
        topics=[settings.topics.intake],
        handler=handler,
        sessions=runtime.sessions,
        producer=await runtime.connected_producer(),
        settings=settings,
        on_commit=committed,
        before_poll=router.caught_up.wait,
    )
    postgres = CpuProbe("postgres", cmdline_contains=f" {url.database} ")
    freeze_heap()  # as every leadflow server does once started (shared.serve)
    runtime.spawn(router.run(), name="scoring-routing")
    runtime.spawn(consumer.run(), name="scoring")
    log("  scoring (the consumer group's first join takes a few seconds)…")
    await first.wait()
    started, scored_before = commits[0]
    own, backends = time.process_time(), _cpu_ticks(postgres)
    await asyncio.wait_for(done.wait(), timeout=max(120.0, count / 500))
    ended, _ = commits[-1]
    await _all_published(url)
    sustained = time.perf_counter() - started
    seconds = ended - started
    own_s = time.process_time() - own
    after = _cpu_ticks(postgres)
    ticks = sum(t - backends.get(pid, 0) for pid, t in after.items())
    cpu = {
        "scoring": own_s / sustained,
        "postgres": ticks / os.sysconf("SC_CLK_TCK") / sustained,
    }
    routing.remove()
    counts = await _counts(url)
    return Result(
        leads=count,
        batches=len(commits),
        seconds=seconds,
        rate=(count - scored_before) / seconds,
        sustained_seconds=sustained,
        sustained=(count - scored_before) / sustained,
        routed=routing.routed,
        routing_ms=routing.per_lead_ms,
        cpu=cpu,
        **counts,
    )


async def _all_published(url: URL) -> None:
    """Wait until no lead waits for routing and no staged event is left unpublished (checked
    every 10 ms)."""
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        query = (
            "SELECT EXISTS (SELECT 1 FROM leads WHERE routing_status = 'pending')"
            " OR EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"
        )
        while await connection.fetchval(query, timeout=30):  # noqa: ASYNC110 (the database)
            await asyncio.sleep(0.01)
    finally:
        await connection.close()


class _RoutingClock:
    """Times each round of the scoring process's routing (``pending.route_pending``: take the
    pending leads, route them, commit), divided by the leads it routed or queued; kept with
    that number of leads, so that quantiles can be taken over leads."""

    def __init__(self) -> None:
        self.routed = 0
        self.per_lead_ms: list[tuple[float, int]] = []
        self._saved: Any = None

    def install(self) -> None:
        self._saved = route_pending = pending.route_pending

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            taken, decisions = await route_pending(*args, **kwargs)
            spent = time.perf_counter() - started
            if routed := sum(d.outcome in ("routed", "queued") for d in decisions):
                self.routed += routed
                self.per_lead_ms.append((spent * 1000 / routed, routed))
            return taken, decisions

        pending.route_pending = timed  # type: ignore[assignment]

    def remove(self) -> None:
        if self._saved is not None:
            pending.route_pending = self._saved


class _Counting:
    """The scoring handler, counting the events it is handed (for the bench's clock only)."""

    def __init__(self, handler: ScoringHandler) -> None:
        self.handler = handler
        self.seen = 0

    async def __call__(self, event: Any, **kwargs: Any) -> None:
        await self.handle_batch([event], **kwargs)

    async def handle_batch(self, events: Any, **kwargs: Any) -> None:
        await self.handler.handle_batch(events, **kwargs)
        self.seen += len(events)


async def _counts(url: URL) -> dict[str, int]:
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM leads WHERE scored_at IS NOT NULL) AS scored,"
            " (SELECT count(*) FROM outbox WHERE type <> 'ruleset.activated') AS outbox,"
            " (SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            "   AND type <> 'ruleset.activated') AS published",
            timeout=60,
        )
    finally:
        await connection.close()
    assert row is not None
    return dict(row)


def checks(result: Result) -> list[Check]:
    return [
        Check(
            "every lead scored once",
            result.scored == result.leads,
            f"{result.scored:,} of {result.leads:,} leads have a score",
        ),
        Check(
            "lead.scored (and stage events) staged for each lead",
            result.outbox >= result.leads,
            f"{result.outbox:,} outbox rows, {result.published:,} published by the relay so far",
        ),
    ]
