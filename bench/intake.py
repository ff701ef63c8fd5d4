"""Intake suite: ``POST /v1/leads`` on PostgreSQL against the ceiling of a bare FastAPI app.

Three runs with the same load, in one process tree, so their ratios are comparable on a noisy
machine:

1. the load generator against a trivial responder — its own ceiling;
2. (a) the ceiling: FastAPI validating the same body and answering 202 with no I/O;
3. (b) the real intake app (``services.api.create_app``) on a fresh PostgreSQL database,
   migrated with ``shared.migrate.upgrade`` and dropped at the end. Its outbox relay does not
   run: this is the durable 202 path (the lead, inquiry, history and outbox rows are committed
   before the answer). Every request posts a distinct email, so each creates a lead, and
   afterwards the number of leads must equal the number of 202 answers;
4. (c) the process as deployed: ``leadflow intake`` (its outbox relay in the process,
   publishing to the embedded broker) on another fresh database; afterwards every outbox row
   must have been published.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from bench.loadgen import CpuProbe, LoadSpec, RequestTemplate, Stats, run_load
from bench.servers import Served, asgi_server, bare_app, raw_server, services_ready
from bench.suite import Check, Log, Options, Report, Row
from services.api import create_app
from services.intake.keys.store import create_key
from services.settings import load_settings
from shared.broker import EMBEDDED_PARTITIONS, EmbeddedBroker, free_port
from shared.migrate import upgrade
from shared.runtime import Runtime

BODY = (
    b'{"email":"lead-<id>@example.com","first_name":"Ada","last_name":"Lovelace",'
    b'"company":"Analytical Engines Ltd","source":"web"}'
)
SUBMIT = RequestTemplate("POST", "/v1/leads", BODY, expect=202)


def intake_app(db_url: str) -> Served:
    """The real intake app, built as ``leadflow intake`` builds it, minus the outbox relay."""
    settings = load_settings(
        db={"url": db_url, "pool_size": 20},
        kafka={"bootstrap_servers": None},
        intake={"rate_limit_per_key": None, "rate_limit_per_ip": None},  # one client, many posts
    )
    runtime = Runtime.create(settings)
    return Served(create_app(runtime), runtime.close)


def run(options: Options, log: Log) -> Report:
    tag = secrets.token_hex(3)

    def load(
        port: int, label: str, probes: tuple[CpuProbe, ...], template: RequestTemplate = SUBMIT
    ) -> Stats:
        spec = LoadSpec(
            port=port,
            template=template,
            connections=options.concurrency,
            processes=options.processes,
            warmup_s=options.warmup,
            duration_s=options.seconds,
            probes=probes,
            run_tag=f"{tag}{label}",
        )
        stats = run_load(spec)
        log(f"  {stats.rps:,.0f} requests/s, p99 {stats.p99_ms:.1f} ms, {stats.errors} errors")
        return stats

    log("load generator ceiling: a trivial asyncio responder")
    with raw_server() as server:
        generator = load(server.port, "g", (CpuProbe("server", (server.pid,)),))

    log("(a) ceiling: bare FastAPI + Pydantic body, no I/O")
    with asgi_server("ceiling", bare_app) as server:
        ceiling = load(server.port, "a", (CpuProbe("server", (server.pid,)),))

    log("(b) intake POST /v1/leads on PostgreSQL (outbox relay not running)")
    with bench_database(options.pg_url, log) as url:
        database = url.database or ""
        # As a web form posts: with a public key (no rate limit set, so none is hit).
        key = asyncio.run(_public_key(url))
        form = replace(SUBMIT, headers=(("X-API-Key", key),))
        with asgi_server("intake", partial(intake_app, _dsn(url))) as server:
            probes = (
                CpuProbe("server", (server.pid,)),
                CpuProbe("postgres", cmdline_contains=f" {database} "),
            )
            intake = load(server.port, "b", probes, form)
        counts = asyncio.run(_count_rows(url))  # the server has stopped: every commit is in

    log("(c) leadflow intake as deployed: its outbox relay publishing to the embedded broker")
    with EmbeddedBroker() as broker, bench_database(options.pg_url, log) as url:
        key = asyncio.run(_public_key(url))
        deployed_form = replace(SUBMIT, headers=(("X-API-Key", key),))
        with leadflow_intake(url, broker.bootstrap_servers) as (pid, port):
            deployed_probes = (
                CpuProbe("server", (pid,)),
                CpuProbe("postgres", cmdline_contains=f" {url.database} "),
                CpuProbe("broker", cmdline_contains=f"127.0.0.1:{broker.port}"),
            )
            deployed = load(port, "c", deployed_probes, deployed_form)
            published = asyncio.run(_all_published(url))

    report = Report(
        title="Intake: POST /v1/leads",
        caption=(
            f"{options.concurrency} keep-alive HTTP/1.1 connections, {options.processes} "
            f"load-generator process{'es' if options.processes > 1 else ''}; "
            f"{options.warmup:g} s warm-up, then {options.seconds:g} s measured per row. "
            "Servers: uvicorn, 1 worker, uvloop, httptools, access log off, 127.0.0.1. "
            "(b) measures the durable 202 path: the lead, inquiry, history and outbox rows are "
            "committed before the answer; the outbox relay is not running (no Kafka). "
            "CPU: average cores busy during the measured window (server: the uvicorn process; "
            "postgres: the backends of the benchmark database)."
        ),
        rows=[
            Row("loadgen ceiling (raw responder)", generator),
            Row("(a) ceiling: bare FastAPI, no I/O", ceiling),
            Row("(b) intake on PostgreSQL", intake),
            Row("(c) leadflow intake, relay publishing", deployed),
        ],
    )
    if ceiling.rps > 0:
        report.ratios.append(("(b) / (a) requests/s", intake.rps / ceiling.rps))
        report.ratios.append(
            ("(c) / (a) requests/s (target ≥ 0.6, p99 < 50 ms)", deployed.rps / ceiling.rps)
        )
    if ceiling.per_server_core and intake.per_server_core:
        report.ratios.append(
            (
                "(b) / (a) requests per server CPU-second (steadier on a busy machine)",
                intake.per_server_core / ceiling.per_server_core,
            )
        )
    if generator.rps > 0:
        report.ratios.append(("(a) / load generator ceiling", ceiling.rps / generator.rps))
    report.checks.extend(_checks(intake, counts))
    report.checks.append(
        Check(
            "(c) every event the answers committed reached the broker",
            published,
            "the relay published every outbox row within 30 s of the load's end"
            if published
            else "outbox rows still unpublished 30 s after the load",
        )
    )
    return report


@contextlib.contextmanager
def leadflow_intake(url: URL, bootstrap: str) -> Iterator[tuple[int, int]]:
    """``leadflow intake`` as a process of its own (its relay in it), on the bench database and
    the broker: its pid and port, until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DB__URL=url.set(drivername="postgresql+asyncpg").render_as_string(False),
        LEADFLOW_DB__POOL_SIZE="20",
        LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        LEADFLOW_KAFKA__PARTITIONS=str(EMBEDDED_PARTITIONS),
        LEADFLOW_KAFKA__IDEMPOTENCE="false",  # the embedded broker has no InitProducerId
        LEADFLOW_TOPICS__PREFIX=f"bench{secrets.token_hex(4)}",
        LEADFLOW_LOG_LEVEL="WARNING",
        LEADFLOW_INTAKE__RATE_LIMIT_PER_IP="",  # one load generator posts everything
        LEADFLOW_INTAKE__RATE_LIMIT_PER_KEY="",
        LEADFLOW_HTTP__INTAKE_PORT=str(port),
    )
    leadflow = os.path.join(os.path.dirname(sys.executable), "leadflow")
    process = subprocess.Popen([leadflow, "intake"], env=env, stdin=subprocess.DEVNULL)
    try:
        asyncio.run(services_ready({"intake": port}))
        yield process.pid, port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _all_published(url: URL, within_s: float = 30.0) -> bool:
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        deadline = time.monotonic() + within_s
        query = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        while await connection.fetchval(query):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.5)  # the relay's progress, read from the database
        return True
    finally:
        await connection.close()


async def _public_key(url: URL) -> str:
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    try:
        async with engine.begin() as connection:
            session = AsyncSession(bind=connection)
            key, _ = await create_key(session, kind="public", now=datetime.now(UTC), name="bench")
            await session.commit()
    finally:
        await engine.dispose()
    return key


def _checks(intake: Stats, counts: dict[str, int]) -> list[Check]:
    accepted = intake.expected_total
    leads = counts["leads"]
    checks = [
        Check(
            "(b) leads in the database = 202 answers",
            leads == accepted and accepted > 0,
            f"{leads:,} leads, {accepted:,} answers 202 "
            f"({intake.sent:,} sent, {intake.unanswered:,} unanswered, statuses {intake.statuses})",
        )
    ]
    others = {name: n for name, n in counts.items() if name != "leads"}
    checks.append(
        Check(
            "(b) one inquiry, one history entry and one outbox row per lead",
            all(n == leads for n in others.values()),
            ", ".join(f"{n:,} {name}" for name, n in others.items()),
        )
    )
    return checks


# --------------------------------------------------------------------------- the database


@contextlib.contextmanager
def bench_database(pg_url: str, log: Log) -> Iterator[URL]:
    """A fresh database next to ``pg_url``'s, migrated to head, dropped when the block ends."""
    admin = make_url(pg_url)
    url = admin.set(database=f"leadflow_bench_{secrets.token_hex(4)}")
    asyncio.run(_admin(admin, f'CREATE DATABASE "{url.database}"'))
    try:
        log(f"  created database {url.database}; migrating")
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        log(f"  dropped database {url.database}")


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(admin: URL, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(admin), timeout=10)
    try:
        await connection.execute(statement, timeout=60)
    finally:
        await connection.close()


async def _migrate(url: URL) -> None:
    engine = create_async_engine(url.set(drivername="postgresql+asyncpg"))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def _count_rows(url: URL) -> dict[str, int]:
    connection = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        row = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM leads) AS leads,"
            " (SELECT count(*) FROM inquiries) AS inquiries,"
            " (SELECT count(*) FROM lead_history) AS history,"
            " (SELECT count(*) FROM outbox) AS outbox",
            timeout=60,
        )
    finally:
        await connection.close()
    assert row is not None
    return dict(row)
