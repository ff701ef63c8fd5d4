"""The figures docs/capacity.md plans from: CPU per lead of each process, and the rows and bytes
each lead leaves in each table, measured with the five production processes (intake, scoring,
webhooks, SLA monitor, analytics) on PostgreSQL and the embedded broker, leads posted at a steady
rate and handed to a webhook receiver (``lead.qualified``: routing, handoff and SLA clocks on).

    python -m bench.capacity [--rate 200] [--seconds 30]

Then the plan for 100, 1,000 and 10,000 leads/s from those figures, with its arithmetic.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import dataclass

import asyncpg
import uvloop
from rich.table import Table

from bench.suite import machine_pace
from bench.webhooks import (
    BENCH,
    MACHINE,
    QUALIFIED,
    _latency_run,
    bare_request_ms,
    console,
    pipeline_arguments,
    pipeline_ms_per_lead,
    print_pace,
    running_pipeline,
)

PROCESSES = ("intake", "scoring", "webhooks", "sla-monitor", "analytics")
RATES = (100, 1_000, 10_000)
BUSY = 0.6
"""The share of a core a replica is planned to keep busy: room for bursts and for a replica
lost during a rollout."""


@dataclass(frozen=True)
class TableUse:
    name: str
    rows: int
    bytes: int
    """Table, its indexes and TOAST (``pg_total_relation_size``)."""


async def table_use(dsn: str) -> list[TableUse]:
    connection = await asyncpg.connect(dsn)
    try:
        names = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        found = []
        for (name,) in names:
            rows = await connection.fetchval(f'SELECT count(*) FROM "{name}"')
            size = await connection.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
            if rows:
                found.append(TableUse(name, rows, size))
        return found
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    args = pipeline_arguments(parser, rate=200.0, seconds=30.0).parse_args(argv)
    args.event, args.payload, args.burst = QUALIFIED, "rich", 0
    pace, bare = [machine_pace()], [bare_request_ms()]
    with running_pipeline(args.pg_url, PROCESSES) as pipeline:
        run = uvloop.run(_latency_run(args, pipeline))
        dsn = pipeline.cpu.dsn
        tables = uvloop.run(table_use(dsn))
        leads = next(t.rows for t in tables if t.name == "leads")
    bare.append(bare_request_ms())
    pace.append(machine_pace())
    measured = len(run.posted.accepted)
    print_pace(pace)
    per_lead = {
        label: seconds * 1000 / max(measured, 1)
        for label, seconds in run.cpu.seconds.items()
        if label not in (MACHINE, BENCH)
    }
    total = pipeline_ms_per_lead(run.cpu, measured)
    reference = statistics.fmean(bare)
    _cpu_report(per_lead, total, reference, measured, args.rate)
    _table_report(tables, leads)
    _plan(per_lead, tables, leads)
    return 0


def _cpu_report(
    per_lead: dict[str, float], total: float, reference: float, measured: int, rate: float
) -> None:
    table = Table(title=f"CPU per lead, {measured:,} leads posted at {rate:,.0f}/s")
    for heading in ("process", "CPU ms per lead", "÷ bare FastAPI request"):
        table.add_column(heading, justify="left" if heading == "process" else "right")
    for label, ms in per_lead.items():
        table.add_row(label, f"{ms:.3f}", f"{ms / reference:.1f}")
    table.add_row("pipeline", f"{total:.3f}", f"{total / reference:.1f}")
    console.print(table)
    console.print(f"  a bare FastAPI request: {reference:.3f} ms CPU (mean of before and after)")


def _table_report(tables: list[TableUse], leads: int) -> None:
    table = Table(title=f"What {leads:,} leads left in PostgreSQL (warm-up included)")
    for heading in ("table", "rows", "rows per lead", "bytes per lead"):
        table.add_column(heading, justify="left" if heading == "table" else "right")
    for use in sorted(tables, key=lambda t: -t.bytes):
        table.add_row(
            use.name, f"{use.rows:,}", f"{use.rows / leads:.2f}", f"{use.bytes / leads:,.0f}"
        )
    console.print(table)


def _plan(per_lead: dict[str, float], tables: list[TableUse], leads: int) -> None:
    """Cores each process needs at each rate (rate × CPU ms per lead), and the replicas that
    keep each at ``BUSY`` of a core: a Python process uses one core at most."""
    table = Table(title=f"Plan: cores needed → replicas at {BUSY:.0%} of a core each")
    table.add_column("process", justify="left")
    for rate in RATES:
        table.add_column(f"{rate:,} leads/s", justify="right")
    for label, ms in per_lead.items():
        cells = []
        for rate in RATES:
            cores = rate * ms / 1000
            if label in ("PostgreSQL", "broker"):  # one server's cores, not replicas
                cells.append(f"{cores:.1f} → {cores / BUSY:.1f} cores")
            else:
                cells.append(f"{cores:.1f} → {math.ceil(cores / BUSY)} replicas")
        table.add_row(label, *cells)
    console.print(table)
    growth = Table(title="PostgreSQL growth per million leads, before retention")
    growth.add_column("table", justify="left")
    growth.add_column("GB per million leads", justify="right")
    per_lead = [t for t in tables if t.rows >= leads / 2]  # not the configuration tables
    for use in sorted(per_lead, key=lambda t: -t.bytes):
        growth.add_row(use.name, f"{use.bytes / leads * 1e6 / 1e9:.3f}")
    growth.add_row("all of the above", f"{sum(t.bytes for t in per_lead) / leads * 1e6 / 1e9:.3f}")
    console.print(growth)


if __name__ == "__main__":
    raise SystemExit(main())
