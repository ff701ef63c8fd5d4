"""``python -m bench.funnel [--leads N]``: the funnel report and the analytics consumer on
PostgreSQL (issue 19).

1. **A generated history**: ``--leads`` funnel lines (default 1,000,000) over two years of cohorts
   ending 2026-11-30, written with COPY in the order the leads came in: six sources in a
   realistic mix, 20 campaigns each, four segments, five teams of ten owners, a fifth of them
   existing customers, two ruleset versions; MQL, SQL, opportunity and booking by
   source-dependent rates, with lags of hours to weeks and lognormal amounts; 1 % test leads.
   Seeded: every run the same data.
2. **The report**: ``reports.funnel`` (what ``GET /v1/funnel`` and ``leadflow funnel show`` run)
   for a year of cohorts grouped by source, then ``--queries`` more over varied windows (a
   year, a quarter, a month), groupings and filters; p50 and p95 of the time each took, beside a
   reference measured in the same run: a bare ``count(*)`` over the same year of lines.
3. **The monthly review** of three months (``reports.monthly_review`` and its files: what
   ``leadflow report monthly`` builds), with the facts the review reads generated beside the
   lines (each MQL with its rules; sales' rejections and recyclings; losses).
4. **The consumer**: ``--events`` events (``lead.received``, then ``lead.mql``, ``lead.routed``
   and two outcomes) of new leads, with the history in place: applied by the analytics handler
   alone in batches of the consumer's ``max_batch``; then as many again published to the
   embedded broker first and drained by ``leadflow analytics`` as a process (polling, decoding,
   claiming, committing offsets): events per second from its readiness (``/readyz``: its
   partitions assigned; its start and the group's join are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import httpx
from rich.table import Table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.intake import bench_database
from bench.suite import Log, Options, Report, machine_pace, quantile, run_standalone
from services.analytics import review_files
from services.analytics.handlers import AnalyticsHandler
from services.analytics.projection import sourced_by
from services.analytics.reports import funnel, monthly_review
from services.analytics.settings import AnalyticsSettings, analytics_config
from services.intake.analytics import inquiry_origins
from services.settings import load_settings
from services.sla_monitor.analytics import attainment_by_source
from shared.broker import EmbeddedBroker, free_port
from shared.events import (
    CloudEvent,
    LeadMql,
    LeadOutcome,
    LeadOutcomeData,
    LeadReceived,
    LeadReceivedData,
    LeadRouted,
    LeadRoutedData,
    StageChangedData,
)
from shared.events.envelope import topic_for
from shared.kafka import make_producer

END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
DAYS = 730
SOURCES = {  # share of inquiries, MQL rate
    "web": (0.45, 0.22), "google-ads": (0.20, 0.18), "meta": (0.15, 0.10),
    "event": (0.08, 0.35), "referral": (0.07, 0.40), "partner": (0.05, 0.30),
}  # fmt: skip
MEDIUM = {"web": "organic", "google-ads": "cpc", "meta": "social", "event": "event"}
SEGMENTS = [("smb", 0.50), ("mid-market", 0.35), ("enterprise", 0.10), (None, 0.05)]
TEAMS = ["emea", "amer", "apac", "inside", "enterprise"]
OWNERS = {team: [uuid4() for _ in range(10)] for team in TEAMS}
COLUMNS = (
    "lead_id", "cohort_at", "cohort_day", "cohort_month", "source", "campaign", "medium",
    "ad_platform", "segment", "team", "owner_id", "owner_email", "is_expansion", "ruleset",
    "is_test", "mql_at", "sql_at", "opportunity_at", "booked_at", "lost_at", "opportunity_amount",
    "booking_amount", "currency", "sourced_by",
)  # fmt: skip


def _pick(rng: random.Random, weighted: Sequence[tuple[object, float]]) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


RULES = [
    "business-email",
    "senior-title",
    "mid-market",
    "demo-requested",
    "pricing-page",
    "webinar",
]
REJECTIONS = ["no_budget", "not_a_fit", "no_authority", "bad_timing"]
LOSSES = ["price", "competitor", "no_decision"]


def line(rng: random.Random, index: int, leads: int) -> tuple[tuple[object, ...], list[tuple]]:
    """The ``index``-th of ``leads`` leads' funnel line, as the analytics consumer would have
    folded it (leads come in evenly over the two years, and are written in that order), and the
    facts the monthly review reads of it: its MQL with the rules that made it one, sales'
    rejection and the recycling after it (three in ten MQLs that never became SQLs), a loss."""
    source = str(_pick(rng, [(s, share) for s, (share, _) in SOURCES.items()]))
    cohort_at = END - timedelta(seconds=(leads - index - rng.random()) * DAYS * 86400 / leads)
    day = cohort_at.date()
    team = rng.choice(TEAMS)
    stages: list[datetime | None] = [None, None, None, None]
    at = cohort_at
    odds = [SOURCES[source][1], 0.40, 0.50, 0.30]
    lags_h = [24, 72, 168, 720]
    for i, (chance, mean_h) in enumerate(zip(odds, lags_h, strict=True)):
        if rng.random() >= chance:
            break
        at = at + timedelta(hours=rng.expovariate(1 / mean_h))
        stages[i] = at
    mql, sql, opportunity, booked = stages
    if mql is None and rng.random() < 0.01:  # a CRM made it an SQL that was never an MQL
        sql = cohort_at + timedelta(days=2)
    owner = rng.choice(OWNERS[team]) if mql or sql else None
    amount = round(math.exp(rng.gauss(9.9, 0.6)), 2)
    lost = at + timedelta(days=10) if opportunity and not booked and rng.random() < 0.6 else None
    lead_id = uuid4()
    facts: list[tuple] = []
    if mql is not None:
        rules = json.dumps({"ruleset": "v2", "cause": "rules", "rules": rng.sample(RULES, 2)})
        facts.append((uuid4(), lead_id, "mql", mql, rules))
        if sql is None and rng.random() < 0.3:
            reason = rng.choice(REJECTIONS)
            said = mql + timedelta(days=2)
            rejected = json.dumps({"outcome": "rejected", "reason": reason})
            facts.append((uuid4(), lead_id, "outcome", said, rejected))
            facts.append((uuid4(), lead_id, "recycled", said, json.dumps({"reason": reason})))
    if lost is not None:
        loss = json.dumps({"outcome": "lost", "reason": rng.choice(LOSSES)})
        facts.append((uuid4(), lead_id, "outcome", lost, loss))
    return (
        lead_id, cohort_at, day.isoformat(), day.isoformat()[:7], source,
        f"{source}-{rng.randrange(20):02d}", MEDIUM.get(source),
        source if source in ("google-ads", "meta") else None, _pick(rng, SEGMENTS),
        team if owner else None, owner, f"{owner.hex[:8]}@example.com" if owner else None,
        rng.random() < 0.2 if owner else None,
        ("v1" if day < date(2025, 12, 1) else "v2") if mql else None, rng.random() < 0.01,
        mql, sql, opportunity, booked, lost, amount if opportunity else None,
        amount if booked else None, "EUR" if opportunity else None,
        sourced_by(mql, opportunity or booked),
    ), facts  # fmt: skip


async def _generate(url: URL, leads: int, log: Log) -> float:
    rng = random.Random(19)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        chunk = 100_000
        for start in range(0, leads, chunk):
            made = [line(rng, i, leads) for i in range(start, min(start + chunk, leads))]
            rows = [row for row, _ in made]
            await connection.copy_records_to_table("analytics_leads", records=rows, columns=COLUMNS)
            await connection.copy_records_to_table(
                "analytics_facts",
                records=[fact for _, facts in made for fact in facts],
                columns=("event_id", "lead_id", "kind", "occurred_at", "detail"),
            )
            log(f"  {start + len(rows):,} lines written")
        await connection.execute("ANALYZE analytics_leads")
        await connection.execute("ANALYZE analytics_facts")
    finally:
        await connection.close()
    return time.perf_counter() - started


QUERIES: list[tuple[str, dict[str, object]]] = [
    ("source", {}), ("campaign", {}), ("segment", {}), ("team", {}), ("owner", {}),
    ("cohort_month", {}), ("source", {"segment": "enterprise"}), ("source", {"team": "emea"}),
    ("campaign", {"source": "web"}), ("source", {"expansion": False}),
    ("ruleset", {}), ("medium", {"ad_platform": "meta"}),
]  # fmt: skip


async def _report(url: URL, queries: int, log: Log) -> tuple[list[float], list[float], float]:
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    settings = AnalyticsSettings()
    rng = random.Random(7)
    year = (date(2025, 12, 1), date(2026, 11, 30))
    timings, references = [], []
    try:
        async with sessions() as session:  # warm the caches and the statement cache
            await funnel(session, settings, start=year[0], end=year[1], group_by="source")
        for index in range(queries + 1):
            group_by, filters = ("source", {}) if index == 0 else rng.choice(QUERIES)
            span = 365 if index == 0 else rng.choice((365, 91, 30))
            end = year[1] - timedelta(days=0 if index == 0 else rng.randrange(0, 300))
            started = time.perf_counter()
            async with sessions() as session:
                found = await funnel(
                    session, settings, start=end - timedelta(days=span - 1), end=end,
                    group_by=group_by, filters=filters,  # type: ignore[arg-type]
                )  # fmt: skip
            timings.append((time.perf_counter() - started) * 1000)
            if index == 0:
                first = found.total.stages[0].reached if found.total else 0
                log(f"  a year by source: {first:,} inquiries in {timings[0]:.0f} ms")
            started = time.perf_counter()
            async with engine.connect() as connection:
                await connection.exec_driver_sql(
                    "SELECT count(*) FROM analytics_leads WHERE NOT is_test "
                    "AND cohort_day BETWEEN $1 AND $2",
                    (year[0].isoformat(), year[1].isoformat()),
                )
            references.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.dispose()
    return timings, references, first


def _events(leads: int, now: datetime) -> tuple[list[tuple[UUID, UUID]], list[list[CloudEvent]]]:
    """``leads`` new leads' events, a minute apart from ``now``: received, MQL, routed, an
    opportunity and a booking."""
    ids = [(uuid4(), uuid4()) for _ in range(leads)]
    stories = []
    for lead_id, inquiry_id in ids:
        at = [now + timedelta(minutes=i) for i in range(PER_LEAD)]
        received = LeadReceivedData(
            lead_id=lead_id, inquiry_id=inquiry_id, source="web", new_lead=True
        )
        mql = StageChangedData(lead_id=lead_id, from_stage="inquiry", to_stage="mql", cause="rules")
        routed = LeadRoutedData(
            lead_id=lead_id, trigger="qualified", rule="default", team="emea",
            is_expansion=False, reason="round robin", owner_id=OWNERS["emea"][0],
            owner_email="ana@example.com",
        )  # fmt: skip
        outcomes = [
            LeadOutcome.about_lead(
                lead_id,
                LeadOutcomeData(
                    lead_id=lead_id,
                    outcome=kind,
                    occurred_at=when,
                    amount=1000.0,
                ),
                source="/bench",
                time=when,
            )
            for kind, when in (("opportunity", at[3]), ("booked", at[4]))
        ]
        stories.append(
            [
                LeadReceived.about_lead(lead_id, received, source="/bench", time=at[0]),
                LeadMql.about_lead(lead_id, mql, source="/bench", time=at[1], ruleset="v2"),
                LeadRouted.about_lead(lead_id, routed, source="/bench", time=at[2]),
                *outcomes,
            ]
        )
    return ids, stories


PER_LEAD = 5


async def _new_leads(url: URL, events: int, now: datetime) -> list[list[CloudEvent]]:
    """Leads and inquiries for ``events`` events, stored; each lead's events (``_events``)."""
    ids, stories = _events(max(events // PER_LEAD, 1), now)
    connection = await asyncpg.connect(_dsn(url))
    try:
        at = datetime.now(UTC)
        await connection.copy_records_to_table(
            "leads", records=[(i, "web", "inquiry", at, at) for i, _ in ids],
            columns=("id", "source", "stage", "created_at", "updated_at"),
        )  # fmt: skip
        await connection.copy_records_to_table(
            "inquiries",
            records=[(q, i, "web", at, '{"utm": {"campaign": "bench"}}') for i, q in ids],
            columns=("id", "lead_id", "source", "received_at", "submission"),
        )
    finally:
        await connection.close()
    return stories


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _handler_run(url: URL, events: int, log: Log) -> tuple[int, float]:
    """The handler alone, in the consumer's batch size, each lead's events in order and the
    leads interleaved as partitions would give them."""
    stories = await _new_leads(url, events, datetime.now(UTC))
    settings = load_settings(db={"url": url.render_as_string(hide_password=False)})
    handler = AnalyticsHandler(analytics_config(settings), inquiry_origins)
    batch = settings.consumer.max_batch
    stream = [story[i] for i in range(PER_LEAD) for story in stories]
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        started = time.perf_counter()
        for start in range(0, len(stream), batch):
            async with sessions.begin() as session:
                await handler.handle_batch(
                    stream[start : start + batch], session=session, now=datetime.now(UTC)
                )
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    log(f"  handler: {len(stream):,} events applied in {elapsed:.1f} s (batches of {batch})")
    return len(stream), elapsed


async def _process_run(url: URL, events: int, log: Log) -> tuple[int, float]:
    """``leadflow analytics`` as a process on the embedded broker: the events published first
    (a backlog on the intake and lifecycle topics), then the time from its readiness until it
    has kept a fact of every one."""
    # A day ahead: their facts are told from the handler run's by their time.
    stories = await _new_leads(url, events, datetime.now(UTC) + timedelta(days=1))
    prefix, port = f"bench{uuid4().hex[:8]}", free_port()
    with EmbeddedBroker() as broker:
        settings = load_settings(
            kafka={"bootstrap_servers": broker.bootstrap_servers, "idempotence": False},
            topics={"prefix": prefix},
        )
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            sends = [
                await producer.send(topic_for(e, settings.topics), e.encode(), key=e.key.encode())
                for i in range(PER_LEAD)
                for story in stories
                for e in [story[i]]
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        env.update(
            LEADFLOW_DB__URL=url.render_as_string(hide_password=False),
            LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            LEADFLOW_KAFKA__IDEMPOTENCE="false",  # the embedded broker has no InitProducerId
            LEADFLOW_TOPICS__PREFIX=prefix,
            LEADFLOW_HTTP__ANALYTICS_PORT=str(port),
            LEADFLOW_LOG_LEVEL="WARNING",
        )
        env.update({k: v for k, v in os.environ.items() if k.startswith("LEADFLOW_CONSUMER__")})
        leadflow = os.path.join(os.path.dirname(sys.executable), "leadflow")
        process = subprocess.Popen([leadflow, "analytics"], env=env)  # noqa: ASYNC220
        try:
            connection = await asyncpg.connect(_dsn(url))
            try:
                # Counted by the index on the facts' time (the new leads' events are dated
                # from now on): a count of the whole table every poll would take the CPU the
                # drain is measured by.
                count = "SELECT count(*) FROM analytics_facts WHERE occurred_at >= $1"
                expect = len(stories) * PER_LEAD
                since = stories[0][0].time
                await _ready(port, process)  # started, its partitions assigned
                started, first = time.perf_counter(), await connection.fetchval(count, since)
                while (kept := await connection.fetchval(count, since)) < expect:
                    if time.perf_counter() - started > 300 or process.poll() is not None:
                        raise RuntimeError(f"analytics kept {kept:,} facts, then stopped")
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
            finally:
                await connection.close()
        finally:
            process.terminate()
            process.wait(30)
    drained = expect - first
    log(f"  leadflow analytics: {drained:,} events applied in {elapsed:.1f} s after its readiness")
    return drained, elapsed


async def _ready(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the process answers ``/readyz`` 200: its consumer has its partitions."""
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError("leadflow analytics stopped at start")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("leadflow analytics did not get ready")


REVIEWED = ("2026-11", "2026-06", "2025-12")


async def _review_run(url: URL, log: Log) -> list[float]:
    """The monthly review of three months (what ``leadflow report monthly`` builds: the funnel
    by source, the bookings credited, SLA attainment, feedback, goals), in milliseconds."""
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    timings = []
    try:
        for month in REVIEWED:
            started = time.perf_counter()
            async with sessions() as session:
                review = await monthly_review(
                    session, AnalyticsSettings(), month=month, today=date(2026, 12, 7),
                    sla=attainment_by_source,
                )  # fmt: skip
            review_files.archive(review, review_files.html(review))
            timings.append((time.perf_counter() - started) * 1000)
            cohort = sum(s.inquiries for s in review.sources)
            log(f"  review of {month}: {cohort:,} inquiries, {len(review.reasons)} reasons, "
                f"{timings[-1]:.0f} ms")  # fmt: skip
    finally:
        await engine.dispose()
    return timings


def run(options: Options, log: Log, args: argparse.Namespace) -> Report:
    pace = [machine_pace()]
    report = Report(title=f"Funnel: {args.leads:,} leads on PostgreSQL", caption="")
    with bench_database(options.pg_url, log) as url:
        written = asyncio.run(_generate(url, args.leads, log))
        timings, references, first = asyncio.run(_report(url, args.queries, log))
        reviews = asyncio.run(_review_run(url, log))
        applied, elapsed = asyncio.run(_handler_run(url, args.events, log))
        drained, drain_s = asyncio.run(_process_run(url, args.events, log))
    pace.append(machine_pace())
    table = Table(title=report.title)
    for heading in ("measure", "figure", "target", "reference (same run)", "ratio"):
        table.add_column(heading, justify="right")
    ref50 = quantile(references, 0.5)
    table.add_row("lines written (COPY)", f"{args.leads / written:,.0f} lines/s", "", "", "")
    table.add_row(
        "a year by source (first query)", f"{timings[0]:.0f} ms", "< 1,000 ms",
        f"count(*) of the year {references[0]:.0f} ms", f"{timings[0] / references[0]:.1f}",
    )  # fmt: skip
    p50, p95 = quantile(timings, 0.5), quantile(timings, 0.95)
    table.add_row(
        f"report p50 over {len(timings)} queries", f"{p50:.0f} ms", "", f"{ref50:.0f} ms",
        f"{p50 / ref50:.1f}",
    )  # fmt: skip
    table.add_row(
        f"report p95 over {len(timings)} queries", f"{p95:.0f} ms", "< 1,000 ms",
        f"{ref50:.0f} ms", f"{p95 / ref50:.1f}",
    )  # fmt: skip
    table.add_row(
        f"monthly review, slowest of {len(reviews)} months", f"{max(reviews):,.0f} ms",
        "< 10,000 ms", f"{ref50:.0f} ms", f"{max(reviews) / ref50:.1f}",
    )  # fmt: skip
    table.add_row("analytics handler alone", f"{applied / elapsed:,.0f} events/s", "", "", "")
    table.add_row(
        "leadflow analytics draining a backlog", f"{drained / drain_s:,.0f} events/s",
        "≥ 5,000 events/s", "", "",
    )  # fmt: skip
    report.tables.append(table)
    log(f"  a year's inquiries counted: {first:,}")
    log(f"  machine pace {pace[0]:.0f} ms before, {pace[1]:.0f} ms after")
    return report


def main() -> int:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--leads", type=int, default=1_000_000, help="funnel lines generated")
        parser.add_argument("--queries", type=int, default=40, help="varied report queries")
        parser.add_argument("--events", type=int, default=50_000, help="events for the handler")

    return run_standalone("python -m bench.funnel", __doc__, arguments, run)


if __name__ == "__main__":
    raise SystemExit(main())
