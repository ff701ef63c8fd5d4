"""``python -m bench.webhooks [--rate R] [--seconds S] [--burst N] [--event E]``: webhook latency,
throughput.

Production-like: PostgreSQL (a fresh database, its statistics gathered once the warm-up has
filled it, as autovacuum would within its first minute), the embedded broker (topics of four
partitions, as ``leadflow dev`` makes them), and ``leadflow intake``, ``leadflow scoring`` and
``leadflow webhooks`` as three processes. This process posts leads at a
fixed rate (open loop) and runs the CRM receiver, subscribed to ``lead.mql`` (every posted lead
qualifies). Latency: from the intake's 202 to the receiver's 200 for that lead's ``lead.mql``.
Then throughput: ``--burst`` messages queued at once for one fast receiver, drained by the
dispatcher.

``--event lead.qualified``: routing on (``leadflow dev``'s sample team, routing rules and SLA
policies), leads posted with UTM, consent, page and title (``--payload rich``), the receiver
subscribed to the handoff's ``lead.qualified``; the latency runs to that event's arrival.

The pipeline's helpers (processes, posting, CPU window, stage timings) serve ``bench.crm`` too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import uvloop
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.intake import SUBMIT, bench_database
from bench.loadgen import CpuProbe, LoadSpec, _cpu_ticks, run_load
from bench.servers import asgi_server, bare_app, services_ready
from bench.suite import DEFAULT_PG_URL, machine_pace, quantile
from services.routing.main import add_sample_team
from services.scoring.main import activate_sample_rules
from services.settings import load_settings
from services.sla_monitor.sample import activate_sample_policies
from services.webhooks import store
from services.webhooks.models import WebhookMessage
from services.webhooks.schemas import SubscriptionIn
from shared.broker import EMBEDDED_PARTITIONS, EmbeddedBroker
from shared.runtime import Runtime
from tests.support.receiver import Received, Receiver

SECRET_KEY = "sk_bench"
IDLE_RECONNECT_S = 4.0
"""A poster idle this long connects again: uvicorn closes a connection idle for 5 s (at low
``--rate``, with many ``--connections``, each waits that long between posts)."""
MQL, QUALIFIED = "lead.mql", "lead.qualified"
console = Console(width=None if sys.stdout.isatty() else 120)


# --------------------------------------------------------------------------- the pipeline


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(db_url: str, bootstrap: str, ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DB__URL=db_url,
        LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        LEADFLOW_TOPICS__PREFIX=f"bench{uuid4().hex[:8]}",
        LEADFLOW_AUTH__SECRET_KEYS=f'["{SECRET_KEY}"]',
        LEADFLOW_WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8"]',
        LEADFLOW_LOG_LEVEL="WARNING",
        LEADFLOW_INTAKE__RATE_LIMIT_PER_IP="",  # one load generator posts everything
        LEADFLOW_INTAKE__RATE_LIMIT_PER_KEY="",
    )
    for name, port in ports.items():  # LEADFLOW_HTTP__SLA_MONITOR_PORT for `leadflow sla-monitor`
        env[f"LEADFLOW_HTTP__{name.upper().replace('-', '_')}_PORT"] = str(port)
    # The embedded broker as `leadflow dev` sets it up (see shared.broker), unless overridden.
    env["LEADFLOW_KAFKA__PARTITIONS"] = str(EMBEDDED_PARTITIONS)
    env["LEADFLOW_KAFKA__IDEMPOTENCE"] = "false"
    if per_endpoint := os.environ.get("BENCH_PER_ENDPOINT"):  # else the service's default
        env["LEADFLOW_WEBHOOKS__PER_ENDPOINT_CONCURRENCY"] = per_endpoint
    # Any setting of the services: BENCH_LEADFLOW_KAFKA__PARTITIONS=1 sets theirs to 1.
    env.update({k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_LEADFLOW_")})
    return env


SERVICES = ("intake", "scoring", "webhooks")
"""The processes a lead passes through on its way to a webhook receiver."""


@dataclass
class Pipeline:
    """The services running against a fresh database and the embedded broker."""

    env: dict[str, str]
    ports: dict[str, int]
    db_url: str
    """SQLAlchemy URL (asyncpg) of the bench database."""
    cpu: CpuWindow


@contextlib.contextmanager
def running_pipeline(pg_url: str, services: tuple[str, ...] = SERVICES) -> Iterator[Pipeline]:
    """Broker, database and ``leadflow <service>`` for each of ``services`` (by default
    ``intake``, ``scoring`` and ``webhooks``) until the block ends."""
    broker = EmbeddedBroker()
    broker.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with bench_database(pg_url, console.log) as url:
            db_url = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
            ports = {name: free_port() for name in services}
            env = _environment(db_url, broker.bootstrap_servers, ports)
            leadflow = os.path.join(os.path.dirname(sys.executable), "leadflow")
            try:
                for name in ports:
                    processes.append(subprocess.Popen([leadflow, name], env=env))
                services = {name: p.pid for name, p in zip(ports, processes, strict=True)}
                dsn = url.set(drivername="postgresql").render_as_string(False)
                cpu = CpuWindow(services, str(url.database), dsn)
                yield Pipeline(env, ports, db_url, cpu)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)
    finally:
        broker.stop()


async def prepare(pipeline: Pipeline, subscription: SubscriptionIn, *, routing: bool) -> UUID:
    """Activate the sample rules (and, with ``routing``, ``leadflow dev``'s sample team and SLA
    policies, so qualified leads are routed and handed over), create the subscription."""
    settings = load_settings(db={"url": pipeline.db_url})
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        if routing:
            await add_sample_team(runtime)
            await activate_sample_policies(runtime)
        async with runtime.sessions.begin() as session:
            webhooks = settings.webhooks.model_copy(update={"allowed_networks": ["127.0.0.0/8"]})
            now = datetime.now(UTC)
            created = await store.create(session, subscription, settings=webhooks, now=now)
        return created.id
    finally:
        await runtime.close()


class CpuWindow:
    """CPU time of each process of the pipeline over the measured window, from ``/proc``: the
    three services (and their children), PostgreSQL's backends for the bench database, the
    broker (this process's other children) and this process (load generator and receiver)."""

    def __init__(self, services: dict[str, int], database: str, dsn: str) -> None:
        self.services = services
        self.database = database
        self.dsn = dsn
        self.start: tuple[float, dict[str, dict[int, int]], list[int]] | None = None
        self.cores: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.commits: list[int] = []
        """The bench database's committed transactions (``pg_stat_database.xact_commit``, as
        the backends last reported them: within about a second) at the window's edges."""

    async def analyze(self) -> None:
        """Gather the planner's statistics of the bench database, once its warm-up has filled
        it: what autovacuum does within its first minute (``autovacuum_naptime``) in any
        deployment, and never within a run this short. Without them the statements prepared
        on the empty tables keep plans made for empty tables (sequential scans of ``leads``
        and ``inquiries``, a hash join per batch) that no deployment keeps past that minute."""
        connection = await asyncpg.connect(self.dsn)
        try:
            await connection.execute("ANALYZE")
        finally:
            await connection.close()

    async def count_transactions(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            query = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"
            self.commits.append(await connection.fetchval(query, self.database))
        finally:
            await connection.close()

    def _probes(self) -> list[CpuProbe]:
        children = _children()
        ours = set(self.services.values())
        probes = [
            CpuProbe(name, (pid, *_descendants(pid, children)))
            for name, pid in self.services.items()
        ]
        broker = [p for p in children.get(os.getpid(), []) if p not in ours | PROFILERS]
        probes.append(CpuProbe("PostgreSQL", cmdline_contains=f" {self.database} "))
        probes.append(CpuProbe("broker", tuple(broker)))
        probes.append(CpuProbe("bench (loadgen, receiver)", (os.getpid(),)))
        return probes

    def sample(self) -> None:
        """The first call starts the window, the second ends it."""
        now = time.perf_counter()
        ticks = {probe.label: _cpu_ticks(probe) for probe in self._probes()}
        machine = _machine_ticks()
        if self.start is None:
            self.start = (now, ticks, machine)
            return
        then, before, machine_before = self.start
        hz, wall = os.sysconf("SC_CLK_TCK"), now - then
        for label, sample in ticks.items():
            used = sum(t - before[label].get(pid, t) for pid, t in sample.items()) / hz
            self.seconds[label], self.cores[label] = used, used / wall
        busy = [b - a for a, b in zip(machine_before, machine, strict=True)]
        self.seconds["machine (all processes)"] = sum(busy) / hz
        self.cores["machine (all processes)"] = sum(busy) / hz / wall


PROFILERS: set[int] = set()


def _profile(services: dict[str, int], seconds: float) -> None:
    """With ``BENCH_PROFILE_DIR`` set: py-spy records each service over the measured window
    (``<dir>/<service>.raw``, collapsed stacks), beside the CPU it measures."""
    folder = os.environ.get("BENCH_PROFILE_DIR")
    if not folder:
        return
    py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    for name, pid in services.items():
        output = os.path.join(folder, f"{name}.raw")
        command = [py_spy, "record", "-r", "200", "-f", "raw", "-o", output, "--pid", str(pid)]
        profiler = subprocess.Popen(  # noqa: ASYNC220 - not waited for: it stops by itself
            [*command, "--duration", str(int(seconds))], stdout=subprocess.DEVNULL
        )
        PROFILERS.add(profiler.pid)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    parent = int(file.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    return children


def _descendants(pid: int, children: dict[int, list[int]]) -> list[int]:
    found = list(children.get(pid, []))
    for child in list(found):
        found.extend(_descendants(child, children))
    return found


def _machine_ticks() -> list[int]:
    """user, nice, system, irq, softirq, steal ticks of all cores (``/proc/stat``)."""
    with open("/proc/stat") as file:
        fields = [int(f) for f in file.readline().split()[1:]]
    return [fields[i] for i in (0, 1, 2, 5, 6, 7)]


# --------------------------------------------------------------------------- posting leads


def lean_lead(index: int, tag: str) -> dict[str, Any]:
    """The lead the figures before issue 18 were measured with."""
    return {"email": f"b{index}.{tag}@acme-corp.example", "company": "Acme"}


def rich_lead(index: int, tag: str) -> dict[str, Any]:
    """A lead as a web form with tracking sends it: UTM, page, referrer, title, consent (so its
    personal fields reach the subscriber), a custom field. No phone: a shared one would merge
    the leads."""
    return {
        **lean_lead(index, tag),
        "first_name": "Ada",
        "last_name": f"Bench {index}",
        "title": "Head of Revenue Operations",
        "website": "https://acme-corp.example",
        "country": "Germany",
        "utm": {"source": "newsletter", "medium": "email", "campaign": "spring-launch"},
        "page_url": "https://www.leadflow.example/pricing?plan=team",
        "referrer": "https://www.google.com/",
        "consent": {
            "text": "I agree to be contacted about this inquiry.",
            "flags": {"contact": True},
        },
        "custom": {"team_size": "11-50"},
    }


PAYLOADS: dict[str, Callable[[int, str], dict[str, Any]]] = {"lean": lean_lead, "rich": rich_lead}


@dataclass
class Posted:
    """What the open-loop posting gave: per measured lead (its id), when it was posted and
    accepted (``perf_counter``), and its index (its email is ``PAYLOADS[..](index, tag)``)."""

    rate: float
    """Leads posted per second, over the whole posting (warm-up included)."""
    window: tuple[float, float]
    """The measured window's start and end (``perf_counter``)."""
    accepted: dict[str, float] = field(default_factory=dict)
    posted: dict[str, float] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    answered: list[float] = field(default_factory=list)
    """Each measured post's response time: request written → intake's answer read (ms)."""

    def wall(self) -> dict[str, float]:
        """The 202s as wall-clock times (the database's timestamps are wall clock)."""
        clock = time.time() - time.perf_counter()
        return {lead: at + clock for lead, at in self.accepted.items()}


async def post_leads(
    args: argparse.Namespace,
    pipeline: Pipeline,
    lead: Callable[[int], dict[str, Any]],
) -> Posted:
    """Post ``args.rate`` leads a second (open loop) for ``args.warmup`` + ``args.seconds``
    over ``args.connections`` keep-alive connections; the CPU window covers the measured part."""
    port = pipeline.ports["intake"]
    due: asyncio.Queue[tuple[int, bool] | None] = asyncio.Queue()
    result = Posted(rate=0.0, window=(0.0, 0.0))

    async def poster() -> None:
        """One keep-alive connection, one request in flight: raw bytes, not httpx, whose
        CPU per request would make this process the bottleneck it is meant to measure."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = time.perf_counter()
        try:
            while (item := await due.get()) is not None:
                index, measured = item
                if time.perf_counter() - done > IDLE_RECONNECT_S:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                sent = time.perf_counter()
                writer.write(lead_request(port, lead(index)))
                status, body = await _read_response(reader)
                done = time.perf_counter()
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if measured:
                    result.answered.append((done - sent) * 1000)
                if status == 202 and measured:
                    lead_id = orjson.loads(body)["lead_id"]
                    result.accepted[lead_id], result.posted[lead_id] = done, sent
                    result.index[lead_id] = index
        finally:
            writer.close()

    total = int(args.rate * (args.warmup + args.seconds))
    warm = int(args.rate * args.warmup)
    posters = [asyncio.create_task(poster()) for _ in range(args.connections)]
    start = window_start = time.perf_counter()
    cpu = pipeline.cpu
    analyzing: asyncio.Task[None] | None = None
    for index in range(total):
        delay = start + index / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if index == warm * 3 // 5 and warm:  # beside the posting, done before the window
            analyzing = asyncio.create_task(cpu.analyze())
        if index == warm:
            if analyzing is not None:
                await analyzing
            await cpu.count_transactions()
            cpu.sample()
            window_start = time.perf_counter()
            _profile(cpu.services, args.seconds)
        due.put_nowait((index, index >= warm))
    window_end = time.perf_counter()
    cpu.sample()
    await cpu.count_transactions()
    for _ in posters:
        due.put_nowait(None)
    await asyncio.gather(*posters)
    result.rate = total / (time.perf_counter() - start)
    result.window = (window_start, window_end)
    return result


async def wait_for(done: Callable[[], bool], seconds: float) -> None:
    """Poll ``done`` until it holds or ``seconds`` pass."""
    deadline = time.perf_counter() + seconds
    while not done() and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def lead_request(port: int, lead: dict[str, Any]) -> bytes:
    """A lead posted with the secret key (no rate limit applies to it)."""
    body = orjson.dumps(lead)
    return (
        f"POST /v1/leads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {SECRET_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


# --------------------------------------------------------------------------- where the time goes

STAGES_SQL = text(
    """
    WITH received AS (
        SELECT aggregate_id AS lead, id, published_at FROM outbox WHERE type = 'lead.received'
    ), mql AS (
        SELECT DISTINCT ON (aggregate_id) aggregate_id AS lead, published_at
        FROM outbox WHERE type = 'lead.mql' ORDER BY aggregate_id, seq
    ), routed AS (
        SELECT DISTINCT ON (aggregate_id) aggregate_id AS lead, created_at, published_at
        FROM outbox WHERE type IN ('lead.routed', 'lead.queued') ORDER BY aggregate_id, seq
    ), delivered AS (
        SELECT DISTINCT ON (aggregate_id) aggregate_id AS lead, id, created_at, published_at
        FROM outbox WHERE type = :event ORDER BY aggregate_id, seq
    )
    SELECT r.lead, r.published_at AS received_published, s.processed_at AS scored,
           mql.published_at AS mql_published, routed.created_at AS routed_created,
           routed.published_at AS routed_published, d.created_at AS event_created,
           d.published_at AS event_published, w.processed_at AS recorded,
           (SELECT min(a.attempted_at) FROM webhook_attempts a WHERE a.message_seq = m.seq)
               AS attempted,
           m.delivered_at AS settled
    FROM received r
    JOIN processed_events s ON s.consumer = 'scoring' AND s.event_id = r.id::text
    JOIN mql ON mql.lead = r.lead
    LEFT JOIN routed ON routed.lead = r.lead
    JOIN delivered d ON d.lead = r.lead
    JOIN processed_events w ON w.consumer = 'webhooks' AND w.event_id = d.id::text
    JOIN webhook_messages m ON m.event_id = d.id::text
    """
)
BATCHES_SQL = text(
    """
    SELECT (SELECT count(*)::float / greatest(count(DISTINCT xmin::text), 1) FROM inquiries)
               AS per_intake_commit,
           (SELECT count(*)::float / greatest(count(DISTINCT xmin::text), 1)
            FROM webhook_attempts) AS per_settle_commit
    """
)
"""Rows written by one transaction share its ``xmin``: inquiries per intake transaction, attempts
per settling transaction (neither table's rows are updated later), over the latency run."""
ACCEPTED, ARRIVED = "accepted", "arrived"
Stage = tuple[str, str, str]
"""A stage's name and the two points it runs between (columns of ``STAGES_SQL``, or the 202
and the arrival measured here)."""


def stages_of(
    event: str, receiver: str = "receiver", sender: str = "dispatcher"
) -> tuple[Stage, ...]:
    """The stages from the 202 to ``receiver``'s arrival of ``event``, then its settling."""
    head: tuple[Stage, ...] = (
        ("202 → intake relay published lead.received", ACCEPTED, "received_published"),
        ("→ scoring consumed it (transaction start)", "received_published", "scored"),
    )
    if event == MQL:
        middle: tuple[Stage, ...] = (
            ("→ scoring relay published lead.mql", "scored", "event_published"),
        )
    else:
        middle = (
            ("  (beside the path: → scoring relay published lead.mql)", "scored", "mql_published"),
            ("→ routing staged lead.routed/queued", "scored", "routed_created"),
            (
                "  (beside the path: → scoring relay published it)",
                "routed_created",
                "routed_published",
            ),
            # 0 when the pending router hands over in its transaction (the same ``now``)
            (f"→ handoff staged {event}", "routed_created", "event_created"),
            (f"→ scoring relay published {event}", "event_created", "event_published"),
        )
    tail: tuple[Stage, ...] = (
        ("→ webhooks consumer recorded the message", "event_published", "recorded"),
        (f"→ {sender} attempt started", "recorded", "attempted"),
        (f"→ {receiver} got it", "attempted", ARRIVED),
        ("→ attempt settled (delivered_at)", ARRIVED, "settled"),
    )
    return head + middle + tail


@dataclass
class Timings:
    stages: list[tuple[str, float, float]]
    """(name, p50 ms, p99 ms) per stage."""
    per_intake_commit: float
    per_settle_commit: float


async def stage_timings(
    db_url: str,
    event: str,
    stages: tuple[Stage, ...],
    accepted: dict[str, float],
    arrived: dict[str, float],
) -> Timings:
    """Where the time goes, per stage, from the rows' timestamps (wall clock: ``accepted`` and
    ``arrived`` too, by lead id)."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(STAGES_SQL, {"event": event})).mappings().all()
            batches = (await connection.execute(BATCHES_SQL)).one()
    finally:
        await engine.dispose()
    gaps: list[list[float]] = [[] for _ in stages]
    for row in rows:
        lead = row["lead"]
        if lead not in arrived or lead not in accepted:
            continue
        points = {**row, ACCEPTED: accepted[lead], ARRIVED: arrived[lead]}
        for gap, (_, start, end) in zip(gaps, stages, strict=True):
            a, b = points.get(start), points.get(end)
            if a is not None and b is not None:
                a, b = (p if isinstance(p, float) else p.timestamp() for p in (a, b))
                gap.append((b - a) * 1000)
    found = [
        (name, quantile(g, 0.5), quantile(g, 0.99))
        for (name, _, _), g in zip(stages, gaps, strict=True)
    ]
    return Timings(found, batches.per_intake_commit, batches.per_settle_commit)


def stages_table(timings: Timings) -> Table:
    table = Table(title="Where the time goes (database timestamps; clocks of one machine)")
    for heading in ("stage", "p50 ms", "p99 ms"):
        table.add_column(heading, justify="left" if heading == "stage" else "right")
    for name, p50, p99 in timings.stages:
        table.add_row(name, f"{p50:.1f}", f"{p99:.1f}")
    return table


MACHINE, BENCH = "machine (all processes)", "bench (loadgen, receiver)"


def pipeline_ms_per_lead(cpu: CpuWindow, leads: int) -> float:
    """CPU ms per lead of the services, PostgreSQL and the broker (not the load generator)."""
    ours = [label for label in cpu.seconds if label not in (MACHINE, BENCH)]
    return sum(cpu.seconds[label] for label in ours) * 1000 / max(leads, 1)


def bare_request_ms(seconds: float = 5.0) -> float:
    """CPU ms the bare FastAPI app (``python -m bench intake``'s row (a)) spends on one request
    under load: the unit the pipeline's CPU per lead is stated in, measured in the same run."""
    with asgi_server("ceiling", bare_app) as server:
        spec = LoadSpec(
            port=server.port,
            template=SUBMIT,
            connections=32,
            warmup_s=1.0,
            duration_s=seconds,
            probes=(CpuProbe("server", (server.pid,)),),
            run_tag=f"bare{uuid4().hex[:6]}",
        )
        per_core = run_load(spec).per_server_core
    return 1000 / per_core if per_core else float("nan")


def cpu_table(cpu: CpuWindow, leads: int, timings: Timings | None) -> list[Any]:
    """The CPU table and its notes (transactions per lead, batch sizes)."""
    table = Table(title=f"CPU over the measured window (/proc), {leads:,} leads posted in it")
    for heading in ("process", "cores busy", "CPU ms per lead"):
        table.add_column(heading, justify="left" if heading == "process" else "right")
    per_lead = {label: s * 1000 / max(leads, 1) for label, s in cpu.seconds.items()}
    for label in cpu.cores:
        if label != MACHINE:
            table.add_row(label, f"{cpu.cores[label]:.2f}", f"{per_lead[label]:.3f}")
    ours = [label for label in cpu.cores if label not in (MACHINE, BENCH)]
    table.add_row(
        "pipeline (services, PostgreSQL, broker)",
        f"{sum(cpu.cores[k] for k in ours):.2f}",
        f"{pipeline_ms_per_lead(cpu, leads):.3f}",
    )
    table.add_row(MACHINE, f"{cpu.cores[MACHINE]:.2f}", f"{per_lead[MACHINE]:.3f}")
    notes: list[Any] = [table]
    if len(cpu.commits) == 2:
        commits = cpu.commits[1] - cpu.commits[0]
        notes.append(
            f"  PostgreSQL: {commits:,} transactions committed in the window, "
            f"{commits / max(leads, 1):.2f} per lead (pg_stat_database, ±1 s)"
        )
    if timings is not None:
        notes.append(
            f"  leads per intake transaction {timings.per_intake_commit:.2f}, "
            f"attempts per settling transaction {timings.per_settle_commit:.2f}"
        )
    return notes


# --------------------------------------------------------------------------- this benchmark


@dataclass
class Run:
    posted: Posted
    latencies: list[float]
    """202 → receiver's arrival, ms, per measured lead that arrived."""
    whole: list[float]
    """Post written → receiver's arrival, ms."""
    timings: Timings
    burst: tuple[int, float]
    cpu: CpuWindow


async def _latency_run(args: argparse.Namespace, pipeline: Pipeline) -> Run:
    arrived: dict[str, float] = {}
    receiver = Receiver(keep=False)

    def on_request(request: Received) -> None:
        arrived.setdefault(orjson.loads(request.body)["subject"], request.at)

    receiver.on_request = on_request
    await receiver.start()
    try:
        body = SubscriptionIn(url=receiver.url(), event_types=[args.event])
        subscription = await prepare(pipeline, body, routing=args.event == QUALIFIED)
        await services_ready(pipeline.ports)
        tag, payload = uuid4().hex[:8], PAYLOADS[args.payload]
        posted = await post_leads(args, pipeline, lambda index: payload(index, tag))
        await wait_for(lambda: posted.accepted.keys() <= arrived.keys(), 60)
        clock = time.time() - time.perf_counter()
        arrived_wall = {k: at + clock for k, at in arrived.items()}
        stages = stages_of(args.event)
        timings = await stage_timings(
            pipeline.db_url, args.event, stages, posted.wall(), arrived_wall
        )
        burst = await _burst(args.burst, receiver, pipeline.db_url, subscription, args.event)
    finally:
        await receiver.stop()
    latencies = sorted((arrived[k] - t) * 1000 for k, t in posted.accepted.items() if k in arrived)
    whole = sorted((arrived[k] - t) * 1000 for k, t in posted.posted.items() if k in arrived)
    return Run(posted, latencies, whole, timings, burst, pipeline.cpu)


async def _burst(
    count: int, receiver: Receiver, db_url: str, subscription: UUID, event: str
) -> tuple[int, float]:
    """Queue ``count`` messages at once for the subscribed receiver; time the dispatcher."""
    if count == 0:
        return 0, 0.0
    engine = create_async_engine(db_url)
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid4(),
            "subscription_id": subscription,
            "event_id": str(uuid4()),
            "event_type": event,
            "lead_id": str(uuid4()),
            "payload": orjson.dumps({"type": event, "subject": "burst", "data": {}}).decode(),
            "status": "pending",
            "attempts": 0,
            "due_at": now,
            "created_at": now,
        }
        for _ in range(count)
    ]
    before = receiver.count
    async with engine.begin() as connection:
        await connection.execute(insert(WebhookMessage), rows)
    async with engine.begin() as connection:  # as autovacuum would soon after a bulk insert
        await connection.execute(text("ANALYZE webhook_messages"))
    started = time.perf_counter()
    while receiver.count - before < count and time.perf_counter() - started < 120:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return receiver.count - before, elapsed


def pipeline_arguments(
    parser: argparse.ArgumentParser, *, rate: float, seconds: float
) -> argparse.ArgumentParser:
    """The arguments ``post_leads`` and ``running_pipeline`` read (``--rate``, ``--seconds``,
    ``--warmup``, ``--connections``, ``--pg-url``), with this benchmark's defaults."""
    parser.add_argument(
        "--rate", type=float, default=rate, help=f"leads/s posted (default {rate:g})"
    )
    parser.add_argument(
        "--seconds", type=float, default=seconds, help=f"measured seconds ({seconds:g})"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first (5)")
    parser.add_argument("--connections", type=int, default=32, help="posting connections (32)")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    pipeline_arguments(parser, rate=500.0, seconds=20.0)
    parser.add_argument(
        "--burst", type=int, default=20_000, help="messages for throughput (0: none)"
    )
    parser.add_argument(
        "--event",
        choices=(MQL, QUALIFIED),
        default=MQL,
        help=f"the event the receiver subscribes to (default {MQL}); {QUALIFIED}: routing on",
    )
    parser.add_argument(
        "--payload",
        choices=sorted(PAYLOADS),
        help="the leads posted: lean (email, company) or rich (UTM, consent, page, title…); "
        f"default lean for {MQL}, rich for {QUALIFIED}",
    )
    args = parser.parse_args(argv)
    args.payload = args.payload or ("lean" if args.event == MQL else "rich")
    pace = [machine_pace()]
    bare = [bare_request_ms()]
    with running_pipeline(args.pg_url) as pipeline:
        run = uvloop.run(_latency_run(args, pipeline))
    bare.append(bare_request_ms())
    pace.append(machine_pace())
    _report(args, run, pace, bare)
    p50, p99 = quantile(run.latencies, 0.5), quantile(run.latencies, 0.99)
    complete = len(run.latencies) == len(run.posted.accepted)
    return 0 if complete and p50 < 50 and p99 < 250 else 1


def _report(args: argparse.Namespace, run: Run, pace: list[float], bare: list[float]) -> None:
    posted, latencies = run.posted, run.latencies
    table = Table(
        title=f"Webhooks: intake 202 → receiver 200 ({args.event}, {args.payload} leads), "
        "PostgreSQL + broker"
    )
    for heading in ("posted/s", "measured leads", "delivered", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(heading, justify="right")
    table.add_column("max ms", justify="right")
    table.add_row(
        f"{posted.rate:,.0f}",
        f"{len(posted.accepted):,}",
        f"{len(latencies):,}",
        *(f"{quantile(latencies, q):.1f}" for q in (0.5, 0.9, 0.99)),
        f"{max(latencies):.1f}" if latencies else "–",
    )
    console.print(table)
    answered = posted.answered or [0.0]
    console.print(
        f"  intake answers: {posted.statuses}; its response time (before the 202, "
        f"not in the latency above) p50 {quantile(answered, 0.5):.1f} ms, "
        f"p99 {quantile(answered, 0.99):.1f} ms"
    )
    console.print(
        f"  post → receiver (the intake's response time and the latency above, per lead): "
        f"p50 {quantile(run.whole, 0.5):.1f} ms, p99 {quantile(run.whole, 0.99):.1f} ms"
    )
    delivered, elapsed = run.burst
    if args.burst:
        console.print(
            f"  throughput to one fast receiver: {delivered:,} of {args.burst:,} queued messages "
            f"in {elapsed:.2f} s = [bold]{delivered / elapsed:,.0f} deliveries/s[/bold]"
        )
    if latencies:
        console.print(f"  mean {statistics.fmean(latencies):.1f} ms")
    print_pace(pace)
    for item in cpu_table(run.cpu, len(posted.accepted), run.timings):
        console.print(item)
    pipeline = pipeline_ms_per_lead(run.cpu, len(posted.accepted))
    console.print(
        f"  [bold]pipeline CPU per lead ÷ bare FastAPI request CPU = "
        f"{pipeline / statistics.fmean(bare):.1f}[/bold] (target ≤ 8): {pipeline:.3f} ms per "
        f"lead; a bare FastAPI request {bare[0]:.3f} ms before the pipeline ran, "
        f"{bare[1]:.3f} ms after"
    )
    console.print(stages_table(run.timings))


def print_pace(pace: list[float]) -> None:
    before, after = pace
    console.print(
        f"  machine pace (bench.suite.machine_pace, idle machine): {before:.0f} ms before, "
        f"{after:.0f} ms after; figures from runs at different paces do not compare"
    )


if __name__ == "__main__":
    raise SystemExit(main())
