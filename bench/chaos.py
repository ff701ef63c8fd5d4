"""``python -m bench.chaos [--seconds S] [--rate R] [--seed N] [--plan chaos|…]``: a fault run.

The production topology as separate processes (``leadflow intake``, ``scoring``, ``webhooks``,
``sla-monitor``, ``analytics``) on a PostgreSQL server of the run's own and the embedded broker,
with a CRM receiver on 127.0.0.1 subscribed to every lifecycle and SLA event. JSON, form and
Google Ads leads are posted at a fixed rate, with activities and outcomes for the leads accepted,
by clients that retry with the same key; meanwhile (the ``chaos`` plan, seeded) each process is
killed with SIGKILL three times at random points, the broker restarts empty, PostgreSQL restarts,
refuses connections (57P03) and stops, and the CRM flaps (5xx, dropped connections). Then the run
settles and checks the invariants (tests/support/verdict.py): every accepted post stored once,
every input scored once, routed once within capacity, every SLA tier due fired once, every event
delivered and once after dedupe by ``webhook-id``, nothing pending or dead-lettered, the funnel
accounting for every lead. Exit status 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.suite import machine_pace
from tests.support.fault_run import FaultRun, fault_run
from tests.support.faults import PLANS, Fault
from tests.support.postgres_server import PostgresServer
from tests.support.topology import fresh_database, running_topology

console = Console(width=None if sys.stdout.isatty() else 140, log_path=False)


async def _run(args: argparse.Namespace, plan: list[Fault], folder: Path) -> FaultRun:
    with PostgresServer() as postgres:
        db_url = await fresh_database(postgres)
        async with running_topology(postgres, db_url, folder) as topology:
            console.log(f"processes ready; posting {args.rate:g} leads/s for {args.seconds:g} s")
            return await fault_run(
                topology,
                plan,
                seconds=args.seconds,
                rate=args.rate,
                seed=args.seed,
                settle_within=args.settle,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=90.0, help="load duration (90)")
    parser.add_argument("--rate", type=float, default=10.0, help="leads posted per second (10)")
    parser.add_argument("--seed", type=int, default=20, help="the plan's and the mix's seed (20)")
    parser.add_argument("--plan", choices=sorted(PLANS), default="chaos")
    parser.add_argument("--settle", type=float, default=240.0, help="seconds to settle (240)")
    parser.add_argument("--logs", type=Path, help="folder for the process logs (a new one)")
    args = parser.parse_args(argv)
    plan = PLANS[args.plan](args.seconds, args.seed)
    folder = args.logs or Path(tempfile.mkdtemp(prefix="leadflow-chaos-"))
    console.print(_plan_table(plan, args))
    pace = [machine_pace()]
    started = time.monotonic()
    run = asyncio.run(_run(args, plan, folder))
    took = time.monotonic() - started
    pace.append(machine_pace())
    _report(run, took, pace, folder)
    return 0 if run.ok else 1


def _plan_table(plan: list[Fault], args: argparse.Namespace) -> Table:
    load = f"{args.rate:g} leads/s for {args.seconds:g} s"
    title = f"Fault plan '{args.plan}' (seed {args.seed}): {load}"
    table = Table(title=title)
    table.add_column("at s", justify="right")
    table.add_column("fault")
    for fault in plan:
        table.add_row(f"{fault.at:.0f}", fault.describe())
    return table


def _report(run: FaultRun, took: float, pace: list[float], folder: Path) -> None:
    applied = Table(title="Faults as applied (took: until recovered, e.g. the service ready)")
    for heading in ("began s", "took s", "fault", "error"):
        applied.add_column(heading, justify="right" if heading.endswith(" s") else "left")
    for a in run.applied:
        applied.add_row(f"{a.began:.1f}", f"{a.took:.1f}", a.fault.describe(), a.error)
    console.print(applied)
    table = Table(title="Invariants")
    for heading in ("invariant", "expected", "actual", "ok"):
        table.add_column(heading)
    for check in run.checks:
        mark = {True: "[green]ok[/green]", False: "[bold red]FAIL[/bold red]", None: ""}
        table.add_row(check.invariant, check.expected, check.actual, mark[check.ok])
    console.print(table)
    for line in run.details:
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(
        f"  load {run.load_s:.0f} s, settle {run.settle_s:.0f} s, whole run {took:.0f} s; "
        f"logs in {folder}"
    )
    console.print(
        f"  machine pace (bench.suite.machine_pace, lower is faster): {pace[0]:.0f} ms before, "
        f"{pace[1]:.0f} ms after; timings from runs at different paces do not compare"
    )
    console.print(f"  lost {run.lost}, duplicated {run.duplicated}")
    verdict = "[green]all invariants hold[/green]" if run.ok else "[bold red]FAILED[/bold red]"
    console.print(f"  {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
