"""``python -m bench.webhooks [--rate R] [--seconds S] [--burst N]``: webhook latency, throughput.

Production-like: PostgreSQL (a fresh database), the embedded broker (topics of one partition,
as ``leadflow dev`` makes them), and ``leadflow intake``, ``leadflow scoring`` and
``leadflow webhooks`` as three processes. This process posts leads at a
fixed rate (open loop) and runs the CRM receiver, subscribed to ``lead.mql`` (every posted lead
qualifies). Latency: from the intake's 202 to the receiver's 200 for that lead's ``lead.mql``.
Then throughput: ``--burst`` messages queued at once for one fast receiver, drained by the
dispatcher.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import httpx
import orjson
import uvloop
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text

from bench.intake import bench_database
from bench.loadgen import CpuProbe, _cpu_ticks
from bench.suite import DEFAULT_PG_URL, machine_pace, quantile
from services.scoring.main import activate_sample_rules
from services.settings import load_settings
from services.webhooks import store
from services.webhooks.models import WebhookMessage
from services.webhooks.schemas import SubscriptionIn
from shared.broker import EMBEDDED_PARTITIONS, EmbeddedBroker
from shared.runtime import Runtime
from tests.support.receiver import Receiver

SECRET_KEY = "sk_bench"
IDLE_RECONNECT_S = 4.0
"""A poster idle this long connects again: uvicorn closes a connection idle for 5 s (at low
``--rate``, with many ``--connections``, each waits that long between posts)."""
console = Console(width=None if sys.stdout.isatty() else 120)


def _free_port() -> int:
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
        LEADFLOW_HTTP__INTAKE_PORT=str(ports["intake"]),
        LEADFLOW_HTTP__SCORING_PORT=str(ports["scoring"]),
        LEADFLOW_HTTP__WEBHOOKS_PORT=str(ports["webhooks"]),
    )
    # The embedded broker as `leadflow dev` sets it up (see shared.broker), unless overridden.
    env["LEADFLOW_KAFKA__PARTITIONS"] = str(EMBEDDED_PARTITIONS)
    if per_endpoint := os.environ.get("BENCH_PER_ENDPOINT"):  # else the service's default
        env["LEADFLOW_WEBHOOKS__PER_ENDPOINT_CONCURRENCY"] = per_endpoint
    # Any setting of the services: BENCH_LEADFLOW_KAFKA__PARTITIONS=4 sets theirs to 4.
    env.update({k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_LEADFLOW_")})
    return env


async def _prepare(env: dict[str, str], receiver_url: str) -> None:
    """Activate the sample rules, subscribe the receiver to lead.mql."""
    settings = load_settings(db={"url": env["LEADFLOW_DB__URL"]})
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        async with runtime.sessions.begin() as session:
            body = SubscriptionIn(url=receiver_url, event_types=["lead.mql"])
            webhooks = settings.webhooks.model_copy(update={"allowed_networks": ["127.0.0.0/8"]})
            created = await store.create(session, body, settings=webhooks, now=datetime.now(UTC))
        bench_state["subscription"] = created.id
        bench_state["db_url"] = env["LEADFLOW_DB__URL"]
    finally:
        await runtime.close()


bench_state: dict[str, object] = {}


async def _wait_ready(client: httpx.AsyncClient, ports: dict[str, int]) -> None:
    deadline = time.monotonic() + 90
    for port in ports.values():
        while True:
            try:
                response = await client.get(f"http://127.0.0.1:{port}/readyz")
                if response.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"service on port {port} not ready")
            await asyncio.sleep(0.2)


class CpuWindow:
    """CPU time of each process of the pipeline over the measured window, from ``/proc``: the
    three services (and their children), PostgreSQL's backends for the bench database, the
    broker (this process's other children) and this process (load generator and receiver)."""

    def __init__(self, services: dict[str, int], database: str) -> None:
        self.services = services
        self.database = database
        self.start: tuple[float, dict[str, dict[int, int]], list[int]] | None = None
        self.cores: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.commits: list[int] = []
        """The bench database's committed transactions (``pg_stat_database.xact_commit``, as
        the backends last reported them: within about a second) at the window's edges."""

    async def count_transactions(self) -> None:
        connection = await asyncpg.connect(str(bench_state["dsn"]))
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


async def _latency_run(args: argparse.Namespace, env: dict[str, str], ports: dict[str, int]):  # type: ignore[no-untyped-def]
    accepted: dict[str, float] = {}
    posted: dict[str, float] = {}
    accepted_wall: dict[str, float] = {}
    statuses = bench_state["statuses"] = {}
    answered: list[float] = []
    """Each measured post's response time: request written → intake's answer read."""
    bench_state["answered"] = answered
    arrived: dict[str, float] = {}
    receiver = Receiver(keep=False)

    def on_request(request) -> None:  # type: ignore[no-untyped-def]
        arrived.setdefault(orjson.loads(request.body)["subject"], request.at)

    receiver.on_request = on_request
    await receiver.start()
    await _prepare(env, receiver.url())
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await _wait_ready(client, ports)
        due: asyncio.Queue[tuple[int, bool] | None] = asyncio.Queue()

        async def poster() -> None:
            """One keep-alive connection, one request in flight: raw bytes, not httpx, whose
            CPU per request would make this process the bottleneck it is meant to measure."""
            reader, writer = await asyncio.open_connection("127.0.0.1", ports["intake"])
            done = time.perf_counter()
            try:
                while (item := await due.get()) is not None:
                    index, measured = item
                    if time.perf_counter() - done > IDLE_RECONNECT_S:
                        writer.close()
                        reader, writer = await asyncio.open_connection("127.0.0.1", ports["intake"])
                    sent = time.perf_counter()
                    writer.write(_lead_request(ports["intake"], index))
                    status, body = await _read_response(reader)
                    done = time.perf_counter()
                    statuses[status] = statuses.get(status, 0) + 1
                    if measured:
                        answered.append((done - sent) * 1000)
                    if status == 202 and measured:
                        lead = orjson.loads(body)["lead_id"]
                        accepted[lead], posted[lead] = done, sent
                        accepted_wall[lead] = time.time()
            finally:
                writer.close()

        total = int(args.rate * (args.warmup + args.seconds))
        warm = int(args.rate * args.warmup)
        posters = [asyncio.create_task(poster()) for _ in range(args.connections)]
        start = time.perf_counter()
        cpu: CpuWindow = bench_state["cpu"]  # type: ignore[assignment]
        for index in range(total):
            delay = start + index / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == warm:
                await cpu.count_transactions()
                cpu.sample()
                _profile(cpu.services, args.seconds)
            due.put_nowait((index, index >= warm))
        cpu.sample()
        await cpu.count_transactions()
        for _ in posters:
            due.put_nowait(None)
        await asyncio.gather(*posters)
        sent_for = time.perf_counter() - start
        deadline = time.perf_counter() + 60
        while not set(accepted) <= set(arrived) and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        clock = time.time() - time.perf_counter()
        arrived_wall = {k: arrived[k] + clock for k in accepted_wall if k in arrived}
        bench_state["stages"] = await _stages(accepted_wall, arrived_wall)
        burst = await _burst(args.burst, receiver)
    await receiver.stop()
    latencies = sorted((arrived[k] - t) * 1000 for k, t in accepted.items() if k in arrived)
    bench_state["whole"] = sorted(
        (arrived[k] - t) * 1000 for k, t in posted.items() if k in arrived
    )
    return total / sent_for, accepted, latencies, burst


async def _burst(count: int, receiver: Receiver) -> tuple[int, float]:
    """Queue ``count`` messages at once for the subscribed receiver; time the dispatcher."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(str(bench_state["db_url"]))
    now = datetime.now(UTC)
    rows = [
        {
            "id": uuid4(),
            "subscription_id": bench_state["subscription"],
            "event_id": str(uuid4()),
            "event_type": "lead.mql",
            "lead_id": str(uuid4()),
            "payload": '{"type":"lead.mql","subject":"burst","data":{}}',
            "status": "pending",
            "attempts": 0,
            "due_at": now,
            "created_at": now,
        }
        for _ in range(count)
    ]
    before = receiver.count
    async with engine.begin() as connection:
        await connection.execute(insert(WebhookMessage.__table__), rows)
    async with engine.begin() as connection:  # as autovacuum would soon after a bulk insert
        await connection.execute(text("ANALYZE webhook_messages"))
    started = time.perf_counter()
    while receiver.count - before < count and time.perf_counter() - started < 120:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return receiver.count - before, elapsed


STAGES_SQL = text(
    """
    SELECT o1.aggregate_id AS lead, o1.created_at AS intake_commit,
           o1.published_at AS received_published, s.processed_at AS scored,
           o2.published_at AS mql_published, w.processed_at AS recorded,
           (SELECT min(a.attempted_at) FROM webhook_attempts a WHERE a.message_seq = m.seq)
               AS attempted,
           m.delivered_at AS settled
    FROM outbox o1
    JOIN processed_events s ON s.consumer = 'scoring' AND s.event_id = o1.id::text
    JOIN outbox o2 ON o2.aggregate_id = o1.aggregate_id AND o2.type = 'lead.mql'
    JOIN processed_events w ON w.consumer = 'webhooks' AND w.event_id = o2.id::text
    JOIN webhook_messages m ON m.event_id = o2.id::text
    WHERE o1.type = 'lead.received'
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
STAGE_NAMES = (
    "202 → intake relay published lead.received",
    "→ scoring consumed it (transaction start)",
    "→ scoring relay published lead.mql",
    "→ webhooks consumer recorded the message",
    "→ dispatcher attempt started",
    "→ receiver got it",
    "→ attempt settled (delivered_at)",
)


async def _stages(
    accepted: dict[str, float], arrived: dict[str, float]
) -> list[tuple[str, float, float]]:
    """Where the time goes, per stage: (name, p50 ms, p99 ms) from the rows' timestamps."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(str(bench_state["db_url"]))
    async with engine.connect() as connection:
        rows = (await connection.execute(STAGES_SQL)).all()
        bench_state["batches"] = (await connection.execute(BATCHES_SQL)).one()
    await engine.dispose()
    gaps: list[list[float]] = [[] for _ in STAGE_NAMES]
    for row in rows:
        if row.lead not in arrived or row.attempted is None or row.settled is None:
            continue
        points = [
            accepted[row.lead],
            row.received_published.timestamp(),
            row.scored.timestamp(),
            row.mql_published.timestamp(),
            row.recorded.timestamp(),
            row.attempted.timestamp(),
            arrived[row.lead],
            row.settled.timestamp(),
        ]
        for index, (a, b) in enumerate(itertools.pairwise(points)):
            gaps[index].append((b - a) * 1000)
    return [
        (name, quantile(g, 0.5), quantile(g, 0.99))
        for name, g in zip(STAGE_NAMES, gaps, strict=True)
    ]


def _lead_request(port: int, index: int) -> bytes:
    """A lead posted with the secret key (no rate limit applies to it)."""
    body = orjson.dumps(
        {"email": f"b{index}.{uuid4().hex[:6]}@acme-corp.example", "company": "Acme"}
    )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--rate", type=float, default=500.0, help="leads/s posted (default 500)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32, help="posting connections")
    parser.add_argument("--burst", type=int, default=20_000, help="messages for throughput")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    bench_state["pace"] = [machine_pace()]
    broker = EmbeddedBroker()
    broker.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with bench_database(args.pg_url, console.log) as url:
            db_url = url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
            ports = {name: _free_port() for name in ("intake", "scoring", "webhooks")}
            env = _environment(db_url, broker.bootstrap_servers, ports)
            for name in ports:
                leadflow = os.path.join(os.path.dirname(sys.executable), "leadflow")
                processes.append(subprocess.Popen([leadflow, name], env=env))
            services = {name: p.pid for name, p in zip(ports, processes, strict=True)}
            bench_state["cpu"] = CpuWindow(services, str(url.database))
            bench_state["dsn"] = url.set(drivername="postgresql").render_as_string(False)
            try:
                rate, accepted, latencies, burst = uvloop.run(_latency_run(args, env, ports))
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)
    finally:
        broker.stop()
    bench_state["pace"].append(machine_pace())  # type: ignore[attr-defined]
    _report(args, rate, accepted, latencies, burst)
    p50, p99 = quantile(latencies, 0.5), quantile(latencies, 0.99)
    return 0 if len(latencies) == len(accepted) and p50 < 50 and p99 < 250 else 1


def _report(args, rate, accepted, latencies, burst) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="Webhooks: intake 202 → receiver 200 (lead.mql), PostgreSQL + broker")
    for heading in (
        "posted/s",
        "measured leads",
        "delivered",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
    ):
        table.add_column(heading, justify="right")
    table.add_row(
        f"{rate:,.0f}",
        f"{len(accepted):,}",
        f"{len(latencies):,}",
        *(f"{quantile(latencies, q):.1f}" for q in (0.5, 0.9, 0.99)),
        f"{max(latencies):.1f}" if latencies else "–",
    )
    console.print(table)
    answered = sorted(bench_state.get("answered") or [0.0])  # type: ignore[type-var]
    console.print(
        f"  intake answers: {bench_state.get('statuses')}; its response time (before the 202, "
        f"not in the latency above) p50 {quantile(answered, 0.5):.1f} ms, "
        f"p99 {quantile(answered, 0.99):.1f} ms"
    )
    whole = bench_state.get("whole") or []
    console.print(
        f"  post → receiver (the intake's response time and the latency above, per lead): "
        f"p50 {quantile(whole, 0.5):.1f} ms, p99 {quantile(whole, 0.99):.1f} ms"  # type: ignore[arg-type]
    )
    delivered, elapsed = burst
    console.print(
        f"  throughput to one fast receiver: {delivered:,} of {args.burst:,} queued messages in "
        f"{elapsed:.2f} s = [bold]{delivered / elapsed:,.0f} deliveries/s[/bold]"
    )
    if latencies:
        console.print(f"  mean {statistics.fmean(latencies):.1f} ms")
    before, after = bench_state["pace"]  # type: ignore[misc]
    console.print(
        f"  machine pace (bench.suite.machine_pace, idle machine): {before:.0f} ms before, "
        f"{after:.0f} ms after; figures from runs at different paces do not compare"
    )
    _report_cpu(bench_state["cpu"], len(accepted))  # type: ignore[arg-type]
    stages = Table(title="Where the time goes (database timestamps; clocks of one machine)")
    for heading in ("stage", "p50 ms", "p99 ms"):
        stages.add_column(heading, justify="left" if heading == "stage" else "right")
    for name, p50, p99 in bench_state.get("stages") or []:
        stages.add_row(name, f"{p50:.1f}", f"{p99:.1f}")
    console.print(stages)


def _report_cpu(cpu: CpuWindow, leads: int) -> None:
    table = Table(title=f"CPU over the measured window (/proc), {leads:,} leads posted in it")
    for heading in ("process", "cores busy", "CPU ms per lead"):
        table.add_column(heading, justify="left" if heading == "process" else "right")
    per_lead = {label: s * 1000 / max(leads, 1) for label, s in cpu.seconds.items()}
    machine = "machine (all processes)"
    for label in cpu.cores:
        if label != machine:
            table.add_row(label, f"{cpu.cores[label]:.2f}", f"{per_lead[label]:.3f}")
    ours = [label for label in cpu.cores if label != machine]
    table.add_row(
        "pipeline (the above)",
        f"{sum(cpu.cores[k] for k in ours):.2f}",
        f"{sum(per_lead[k] for k in ours):.3f}",
    )
    table.add_row(machine, f"{cpu.cores[machine]:.2f}", f"{per_lead[machine]:.3f}")
    console.print(table)
    if len(cpu.commits) == 2:
        commits = cpu.commits[1] - cpu.commits[0]
        console.print(
            f"  PostgreSQL: {commits:,} transactions committed in the window, "
            f"{commits / max(leads, 1):.2f} per lead (pg_stat_database, ±1 s)"
        )
    if batches := bench_state.get("batches"):
        console.print(
            f"  leads per intake transaction {batches[0]:.2f}, "  # type: ignore[index]
            f"attempts per settling transaction {batches[1]:.2f}"  # type: ignore[index]
        )


if __name__ == "__main__":
    raise SystemExit(main())
