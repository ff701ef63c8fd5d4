"""What every suite takes (``Options``) and gives back (``Report``), and how a report is printed
(by ``python -m bench`` and by a suite run on its own)."""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.loadgen import Stats

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Options:
    seconds: float
    """Measured duration of each load run."""
    warmup: float
    """Unmeasured load before each measured run (connections, pools, caches, JIT-free warm-up)."""
    concurrency: int
    """Keep-alive HTTP/1.1 connections, each with one request in flight."""
    processes: int
    """Load-generator processes the connections are spread over."""
    pg_url: str
    """A PostgreSQL database to connect to in order to create (and drop) the benchmark database."""


@dataclass(frozen=True)
class Row:
    label: str
    stats: Stats


@dataclass(frozen=True)
class Check:
    """A correctness check made after a run; a failed check fails ``make bench``."""

    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    title: str
    caption: str
    rows: list[Row] = field(default_factory=list)
    ratios: list[tuple[str, float]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    tables: list[Any] = field(default_factory=list)
    """Tables (rich renderables) a suite without HTTP rows builds itself, printed as they are."""


Log = Callable[[str], None]
Suite = Callable[[Options, Log], Report]


def render(report: Report) -> Table:
    probes = list(dict.fromkeys(label for row in report.rows for label in row.stats.cpu))
    table = Table(title=report.title, caption=report.caption, caption_justify="left")
    table.add_column("Target", no_wrap=True)
    for heading in ("Requests/s", "p50 ms", "p99 ms", "Errors", "Answered"):
        table.add_column(heading, justify="right")
    for label in probes:
        table.add_column(f"CPU {label}", justify="right")
    table.add_column("Req/server CPU-s", justify="right")
    for row in report.rows:
        stats = row.stats
        table.add_row(
            row.label,
            f"{stats.rps:,.0f}",
            _ms(stats.p50_ms),
            _ms(stats.p99_ms),
            f"{stats.errors:,}",
            f"{stats.requests:,}",
            *(f"{stats.cpu[label]:.2f}" if label in stats.cpu else "" for label in probes),
            f"{stats.per_server_core:,.0f}" if stats.per_server_core else "",
        )
    return table


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile ``q`` of ``values`` (in any order); NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def machine_pace() -> float:
    """Milliseconds a fixed pure-Python loop takes, the median of five: on this shared machine
    the same code runs up to twice as slow at some hours as at others, so figures taken on
    different days are comparable only beside it (lower is faster)."""
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def show(console: Console, report: Report) -> bool:
    if report.rows or not report.tables:
        console.print(render(report))
    for table in report.tables:
        console.print(table)
    for name, ratio in report.ratios:
        console.print(f"  {name}: [bold]{ratio:.3f}[/bold] ({ratio:.1%})")
    ok = True
    for check in report.checks:
        mark = "[green]ok[/green]" if check.ok else "[bold red]FAILED[/bold red]"
        console.print(f"  {mark} {check.name}: {check.detail}")
        ok = ok and check.ok
    console.print()
    return ok


def run_standalone(
    prog: str,
    description: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[Options, Log, argparse.Namespace], Report],
) -> int:
    """``python -m bench.<suite>``: the suite's own arguments plus ``--pg-url``; prints the report
    as ``python -m bench`` does; exit 1 when a check failed."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL database used to create and drop the benchmark database",
    )
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140, log_path=False)
    options = Options(seconds=0, warmup=0, concurrency=1, processes=1, pg_url=args.pg_url)
    return 0 if show(console, run(options, console.log, args)) else 1
