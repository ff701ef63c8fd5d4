"""``python -m bench.sla``: the SLA monitor's sweep on PostgreSQL (issue 17).

1. **Sweep cost against open clocks**: ``--due`` clocks due now among 10k, 100k and 1M open ones
   (``--sizes``); the time to fire them, per due clock, and the claim query's own time. The sweep
   reads a partial index of the due times, so the cost should follow the due clocks, not the open.
2. **Catch-up**: ``--backlog`` clocks whose warning and breach fell due while the monitor was down;
   the time ``Sweeper.catch_up`` takes to fire them all.
3. **Latency under load**: ``--open`` open clocks in the table, then ``leadflow sla-monitor`` (a
   process of its own, with its relay, on the embedded broker) while this process publishes
   ``lead.routed`` at ``--rate`` per second for ``--seconds``. Each lead's clock has a 20 s target,
   a warning at 50 % and the breach at 100 % (so 1,000 tier events a second besides the 500
   ``sla.started``): the lateness of a tier is its outbox row's ``published_at`` (the relay had
   the broker's ack) minus its ``due_at``. No SMTP server is set: the notifier reads each
   notice's lead and logs whom it would tell (composing 1,500 emails a second is not what a
   mail server would take either).

Beside them, the machine pace (``bench.suite.machine_pace``) before and after, the monitor's peak
memory and the table's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import URL

from bench.intake import bench_database
from bench.suite import DEFAULT_PG_URL, machine_pace, quantile
from services.settings import load_settings
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from services.sla_monitor.versions import SLA
from shared.broker import EMBEDDED_PARTITIONS, EmbeddedBroker, free_port
from shared.cosign import store as cosigned
from shared.db import make_engine, make_sessions
from shared.events import LeadRouted, LeadRoutedData
from shared.ids import new_id
from shared.kafka import make_producer

console = Console(width=None if sys.stdout.isatty() else 120)
POLICIES = """
name: bench
contacts: {manager: [manager@example.com]}
policies:
  - id: bench
    first_response:
      within: 20s
      ladder: [{at: 50%, notify: [owner]}, {at: 100%, notify: [manager]}]
"""
COLUMNS = (
    "id", "lead_id", "kind", "state", "policy", "policy_version", "owner_id", "owner_email",
    "team", "source", "calendar", "started_at", "target_s", "deadline", "tiers", "responses",
    "next_tier", "next_due_at", "created_at", "updated_at",
)  # fmt: skip


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _tier(index: int, step: str, due: datetime) -> dict[str, Any]:
    at = {"warning": "50%", "breach": "100%", "escalate": "100% + 1h"}[step]
    return {"index": index, "at": at, "step": step, "due": due.isoformat(), "notify": [],
            "reassign": False}  # fmt: skip


def _rows(count: int, tiers: list[dict[str, Any]], next_due: datetime, now: datetime) -> Iterator:
    tiers_json = json.dumps(tiers)
    deadline = datetime.fromisoformat(next(t["due"] for t in tiers if t["step"] == "breach"))
    for _ in range(count):
        yield (
            new_id(), new_id(), "first_response", "open", "bench", 1, new_id(), "rep@example.com",
            "inbound", "web", "always", now - timedelta(hours=1), 3600.0, deadline, tiers_json,
            '["responded"]', 1, next_due, now, now,
        )  # fmt: skip


def _ladder(overdue: int, now: datetime) -> list[dict[str, Any]]:
    """A warning, the breach and an escalation: the first ``overdue`` of them overdue at ``now``,
    the rest in 30 days."""
    steps, far = ("warning", "breach", "escalate"), now + timedelta(days=30)
    return [
        _tier(i + 1, step, now - timedelta(minutes=10 - i) if i < overdue else far + timedelta(i))
        for i, step in enumerate(steps)
    ]


async def fill(url: URL, *, idle: int, due: int, overdue_tiers: int, now: datetime) -> None:
    """``idle`` clocks with nothing due for 30 days and ``due`` clocks whose first
    ``overdue_tiers`` tiers are overdue, in a table emptied first."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute("TRUNCATE sla_clocks, outbox")
        for tiers, count in ((_ladder(0, now), idle), (_ladder(overdue_tiers, now), due)):
            first_due = datetime.fromisoformat(tiers[0]["due"])
            for start in range(0, count, 50_000):
                records = list(_rows(min(50_000, count - start), tiers, first_due, now))
                await connection.copy_records_to_table(
                    "sla_clocks", records=records, columns=COLUMNS
                )
        await connection.execute("ANALYZE sla_clocks")
    finally:
        await connection.close()


async def _claim_ms(url: URL, now: datetime) -> float:
    connection = await asyncpg.connect(_dsn(url))
    try:
        plan = await connection.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM sla_clocks WHERE next_due_at IS NOT NULL"
            " AND next_due_at <= $1 ORDER BY next_due_at LIMIT 500 FOR UPDATE SKIP LOCKED",
            now,
        )
        return float(json.loads(plan)[0]["Execution Time"])
    finally:
        await connection.close()


async def sweep(url: URL, now: datetime) -> tuple[float, int]:
    """Seconds to fire everything due at ``now``, and the tiers fired."""
    settings = sla_config(load_settings(db={"url": url.render_as_string(hide_password=False)}))
    engine = make_engine(settings.db)
    try:
        sweeper = Sweeper(make_sessions(engine), settings, clock=lambda: now)
        started = time.perf_counter()
        await sweeper.catch_up()
        return time.perf_counter() - started, sweeper.fired
    finally:
        await engine.dispose()


async def sizes_run(url: URL, sizes: list[int], due: int) -> list[dict[str, float]]:
    found = []
    for size in sizes:
        now = datetime.now(UTC)
        console.print(f"  sweep: {due:,} due among {size:,} open clocks: filling")
        await fill(url, idle=size - due, due=due, overdue_tiers=1, now=now)
        claim = await _claim_ms(url, now)
        seconds, fired = await sweep(url, now)
        table = await _table_size(url)
        found.append({"open": size, "due": due, "fired": fired, "seconds": seconds,
                      "per_due_ms": 1000 * seconds / due, "claim_ms": claim,
                      "mb": (table["heap"] + table["indexes"]) / 2**20})  # fmt: skip
    return found


async def backlog_run(url: URL, backlog: int) -> dict[str, float]:
    now = datetime.now(UTC)
    console.print(f"  catch-up: {backlog:,} clocks with a warning and a breach overdue")
    await fill(url, idle=0, due=backlog, overdue_tiers=2, now=now)
    seconds, fired = await sweep(url, now)
    return {"clocks": backlog, "fired": fired, "seconds": seconds}


async def _prepare_load(url: URL, leads: int, open_clocks: int) -> list[UUID]:
    now = datetime.now(UTC)
    console.print(f"  load: {open_clocks:,} open clocks and {leads:,} leads")
    await fill(url, idle=open_clocks, due=0, overdue_tiers=1, now=now)
    settings = load_settings(db={"url": url.render_as_string(hide_password=False)})
    engine = make_engine(settings.db)
    try:
        async with make_sessions(engine).begin() as session:
            await cosigned.bootstrap(session, settings, SLA, POLICIES, by="bench", now=now)
    finally:
        await engine.dispose()
    ids = [new_id() for _ in range(leads)]
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.copy_records_to_table(
            "leads",
            records=[
                (i, f"l{n}.{uuid4().hex[:6]}@x.example", "web", "sql", now, now)
                for n, i in enumerate(ids)
            ],  # fmt: skip
            columns=("id", "email", "source", "stage", "created_at", "updated_at"),
        )
    finally:
        await connection.close()
    return ids


def _monitor(url: URL, bootstrap: str, prefix: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DB__URL=url.render_as_string(hide_password=False),
        LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        LEADFLOW_KAFKA__PARTITIONS=str(EMBEDDED_PARTITIONS),
        LEADFLOW_KAFKA__IDEMPOTENCE="false",  # the embedded broker has no InitProducerId
        LEADFLOW_TOPICS__PREFIX=prefix,
        LEADFLOW_HTTP__SLA_MONITOR_PORT=str(port),
        LEADFLOW_LOG_LEVEL="WARNING",
    )
    leadflow = os.path.join(os.path.dirname(sys.executable), "leadflow")
    return subprocess.Popen([leadflow, "sla-monitor"], env=env)


async def _ready(port: int) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("the SLA monitor did not get ready")


async def _publish(bootstrap: str, topic: str, ids: list[UUID], rate: int) -> float:
    """``lead.routed`` for each lead at ``rate``/s (open loop); returns when it started."""
    settings = load_settings(kafka={"bootstrap_servers": bootstrap, "idempotence": False})
    producer = make_producer(settings.kafka)
    await producer.start()
    started = time.monotonic()
    try:
        tick = 0.02
        for n in range(0, len(ids), max(int(rate * tick), 1)):
            await asyncio.sleep(max(started + n / rate - time.monotonic(), 0))
            batch = ids[n : n + max(int(rate * tick), 1)]
            sends = [await producer.send(topic, _routed(i).encode(), key=str(i).encode())
                     for i in batch]  # fmt: skip
            await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return started


def _routed(lead_id: UUID) -> LeadRouted:
    data = LeadRoutedData(
        lead_id=lead_id, trigger="qualified", rule="bench", team="inbound", is_expansion=False,
        reason="bench", owner_id=new_id(), owner_email="rep@example.com",
    )  # fmt: skip
    return LeadRouted.about_lead(lead_id, data, source="/bench", time=datetime.now(UTC))


async def _lateness(url: URL, since: datetime, expect: int, within_s: float) -> list[float]:
    """Seconds from due to published of each tier event due after ``since``, once ``expect``
    of them are published (or ``within_s`` passed)."""
    query = """
        SELECT extract(epoch FROM published_at - (payload::jsonb #>> '{data,due_at}')::timestamptz)
        FROM outbox WHERE type IN ('sla.warning', 'sla.breached') AND published_at IS NOT NULL
        AND (payload::jsonb #>> '{data,due_at}')::timestamptz >= $1"""
    connection = await asyncpg.connect(_dsn(url))
    try:
        deadline = time.monotonic() + within_s
        while True:
            values = [float(v) for v in await connection.fetchval(f"SELECT array({query})", since)]
            if len(values) >= expect or time.monotonic() > deadline:
                return values
            await asyncio.sleep(1)
    finally:
        await connection.close()


async def _table_size(url: URL) -> dict[str, int]:
    connection = await asyncpg.connect(_dsn(url))
    try:
        row = await connection.fetchrow(
            "SELECT pg_table_size('sla_clocks') AS heap, pg_indexes_size('sla_clocks') AS idx,"
            " (SELECT count(*) FROM sla_clocks) AS n"
        )
        return {"heap": row["heap"], "indexes": row["idx"], "rows": row["n"]}
    finally:
        await connection.close()


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def load_run(url: URL, *, open_clocks: int, rate: int, seconds: int) -> dict[str, Any]:
    ids = await _prepare_load(url, rate * seconds, open_clocks)
    prefix, port = f"bench{uuid4().hex[:8]}", free_port()
    with EmbeddedBroker() as broker:
        monitor = _monitor(url, broker.bootstrap_servers, prefix, port)
        try:
            await _ready(port)
            warm = datetime.now(UTC) + timedelta(seconds=10 + 10)  # 10 s of load, 50 % of 20 s
            console.print(f"  load: {rate}/s lead.routed for {seconds} s")
            await _publish(broker.bootstrap_servers, f"{prefix}.lifecycle", ids, rate)
            expect = int(rate * (seconds - 10) * 2 * 0.95)
            late = await _lateness(url, warm, expect, within_s=60)
            peak = _peak_rss_mb(monitor.pid)
        finally:
            monitor.terminate()
            monitor.wait(30)
    return {"late": late, "peak_rss_mb": peak, "size": await _table_size(url)}


def _print(sizes: list[dict[str, float]], backlog: dict[str, float], load: dict[str, Any],
           pace: tuple[float, float]) -> None:  # fmt: skip
    table = Table(title="SLA sweep: cost against open clocks (PostgreSQL)")
    for column in ("open clocks", "due", "tiers fired", "sweep s", "ms per due clock",
                   "claim query ms", "× the smallest", "table + indexes MB"):  # fmt: skip
        table.add_column(column, justify="right")
    base = sizes[0]["per_due_ms"]
    for s in sizes:
        table.add_row(f"{s['open']:,.0f}", f"{s['due']:,.0f}", f"{s['fired']:,.0f}",
                      f"{s['seconds']:.2f}", f"{s['per_due_ms']:.2f}", f"{s['claim_ms']:.2f}",
                      f"{s['per_due_ms'] / base:.2f}", f"{s['mb']:.0f}")  # fmt: skip
    console.print(table)
    console.print(
        f"Catch-up: {backlog['clocks']:,.0f} overdue clocks, {backlog['fired']:,.0f} tiers fired "
        f"in {backlog['seconds']:.2f} s (target < 10 s)"
    )
    late = load["late"]
    size = load["size"]
    console.print(
        f"Under load: {len(late):,} tier events due during the load; published after due: "
        f"p50 {quantile(late, 0.5):.3f} s, p99 {quantile(late, 0.99):.3f} s, max "
        f"{max(late, default=float('nan')):.3f} s (target p99 < 1 s); the monitor's peak RSS "
        f"{load['peak_rss_mb']:.0f} MB; sla_clocks {size['rows']:,} rows, "
        f"{size['heap'] / 2**20:.0f} MB heap + {size['indexes'] / 2**20:.0f} MB indexes"
    )
    console.print(f"Machine pace: {pace[0]:.0f} ms before, {pace[1]:.0f} ms after (lower: faster)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sla", description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL))
    args = parser.parse_args(argv)
    before = machine_pace()
    with bench_database(args.pg_url, console.print) as url:
        sizes = asyncio.run(sizes_run(url, [int(s) for s in args.sizes.split(",")], args.due))
        backlog = asyncio.run(backlog_run(url, args.backlog))
        load = asyncio.run(
            load_run(url, open_clocks=args.open, rate=args.rate, seconds=args.seconds)
        )
    _print(sizes, backlog, load, (before, machine_pace()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
