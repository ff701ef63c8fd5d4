"""``python -m bench.routing_replicas [--leads N] [--batch B]`` (also in ``python -m bench.routing``
and ``make bench``): routing throughput on PostgreSQL with one router and with three at once,
each router a process of its own (as replicas are), routing its share of the leads with
``route_leads`` in transactions of B leads, as the pending router's rounds do.

Three rows, each over N new leads of the ``bench.routing`` directory (four pools; ``apac`` and
``latam`` share their reps; every tenth lead is a customer's, whose owner is in ``inside``):
1. one router: the reference, measured in the same run;
2. three routers, the leads mixed (each takes every third): every round needs most pools;
3. three routers, the leads split by the locks they need (``router.needs``): ``inside`` and the
   customers' leads, ``named``, ``apac`` and ``latam`` — routers of different pools.

Lock ms per lead: the time the routers' steps took to take their locks
(``leadflow_routing_lock_seconds``: mostly waiting for another router), summed over the routers,
per routed lead. Leads/s: all the leads over the wall time from the first router's start to the
last one's end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from prometheus_client import REGISTRY
from rich.table import Table
from sqlalchemy import select

import services.tables  # noqa: F401 - every table on the metadata
from bench.intake import bench_database
from bench.routing import NOW, add_leads, lead_facts, routing_directory
from bench.suite import Check, Log, Options, Report, run_standalone
from services.routing import store
from services.routing.assign import route_leads
from services.routing.facts import routing_facts
from services.routing.models import RoutingState
from services.routing.router import Situation, needs
from services.routing.store import load_directory
from services.settings import load_settings
from shared.db import make_engine, make_sessions

ROUTERS = 3


@dataclass(frozen=True)
class Replicas:
    label: str
    routers: int
    leads: int
    seconds: float
    lock_s: float

    @property
    def rate(self) -> float:
        return self.leads / self.seconds

    @property
    def lock_ms_per_lead(self) -> float:
        return self.lock_s * 1000 / self.leads


def lock_seconds() -> float:
    """The routing lock histogram's sum in this process (0 before the first routing)."""
    return REGISTRY.get_sample_value("leadflow_routing_lock_seconds_sum") or 0.0


def _router(url: str, leads: list[str], batch: int, ready: Any, done: Any) -> None:
    """One router process: warms up (directory, connections), waits for the others, routes."""
    done.put(asyncio.run(_route(url, [UUID(lead) for lead in leads], batch, ready)))


async def _route(url: str, leads: list[UUID], batch: int, ready: Any) -> tuple[float, float, float]:
    settings = load_settings(db={"url": url})
    engine = make_engine(settings.db)
    sessions = make_sessions(engine)
    try:
        async with sessions() as session:
            await store.routing_off(session)  # the directory, read and compiled once
        ready.wait()
        started, locked = time.time(), lock_seconds()
        for start in range(0, len(leads), batch):
            async with sessions.begin() as session:
                chunk = leads[start : start + batch]
                await route_leads(session, chunk, now=NOW, settings=settings)
        return started, time.time(), lock_seconds() - locked
    finally:
        await engine.dispose()


def measure(url: str, label: str, parts: Sequence[list[UUID]], batch: int) -> Replicas:
    """``parts``: each router's leads. Each router is a process of its own."""
    context = multiprocessing.get_context("spawn")
    ready, done = context.Barrier(len(parts)), context.Queue()
    processes = [
        context.Process(
            target=_router, args=(url, [str(lead) for lead in part], batch, ready, done)
        )
        for part in parts
    ]
    for process in processes:
        process.start()
    results = [done.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    seconds = max(end for _, end, _ in results) - min(start for start, _, _ in results)
    leads = sum(len(part) for part in parts)
    return Replicas(label, len(parts), leads, seconds, sum(lock for _, _, lock in results))


async def _prepare(url: str, count: int, scenarios: int) -> tuple[list[list[UUID]], Any]:
    """The directory, and ``scenarios`` sets of ``count`` new leads; the directory as read."""
    settings = load_settings(db={"url": url})
    engine = make_engine(settings.db)
    sessions = make_sessions(engine)
    try:
        async with sessions.begin() as session:
            await routing_directory(session, settings)
            leads = await add_leads(session, count * scenarios)
        async with sessions() as session:
            token = await session.scalar(select(RoutingState.directory_token))
            directory = await load_directory(session, str(token))
    finally:
        await engine.dispose()
    return [leads[n * count : (n + 1) * count] for n in range(scenarios)], directory


def by_pool(directory: Any, leads: list[UUID], first: int) -> list[list[UUID]]:
    """The leads split by the pool their decision locks (lead ``i`` of the set is
    ``lead_facts(first + i)``): customers' leads (their owner is in ``inside``) with
    ``inside``'s, then ``named``'s, then the rest (``apac`` and ``latam`` share their reps)."""
    inside = directory.teams_by_name["inside"]
    named = directory.teams_by_name["named"]
    parts: list[list[UUID]] = [[], [], []]
    for i, lead in enumerate(leads):
        facts = lead_facts(first + i)
        row = SimpleNamespace(email=facts["email"], company=facts["company"], source="web")
        situation = Situation(routing_facts(row, [{"custom": facts}]), NOW)
        wanted = needs(directory, situation)
        if inside.id in wanted.pools or not wanted.pools:
            parts[0].append(lead)
        elif named.id in wanted.pools:
            parts[1].append(lead)
        else:
            parts[2].append(lead)
    return parts


def measure_replicas(url: str, count: int, batch: int, log: Log) -> list[Replicas]:
    sets, directory = asyncio.run(_prepare(url, count, 4))
    warm, alone, mixed, split = sets
    log("  routing replicas: warm-up")
    measure(url, "warm-up", [warm], batch)
    results = [measure(url, "one router", [alone], batch)]
    log(f"  routing replicas: {results[-1].rate:,.0f} leads/s with one router")
    results.append(
        measure(
            url, "three routers, leads mixed", [mixed[n::ROUTERS] for n in range(ROUTERS)], batch
        )
    )
    log(f"  routing replicas: {results[-1].rate:,.0f} leads/s, three routers, mixed")
    parts = by_pool(directory, split, 3 * count)
    results.append(measure(url, "three routers, one pool each", parts, batch))
    log(f"  routing replicas: {results[-1].rate:,.0f} leads/s, three routers by pool")
    return results


def table(results: list[Replicas]) -> Table:
    reference = results[0]
    table = Table(
        title="Routing replicas on PostgreSQL: one router against three at once",
        caption=(
            "Each router a process, route_leads in transactions of --batch leads. × one: leads/s "
            "over the one-router row of the same run. Lock ms per lead: time the routers' steps "
            "took to take their pool and rep locks (leadflow_routing_lock_seconds), summed over "
            "the routers, per lead."
        ),
        caption_justify="left",
    )
    for heading in ("What", "Routers", "Leads", "Leads/s", "× one", "Lock ms per lead"):
        table.add_column(heading, justify="left" if heading == "What" else "right")
    for r in results:
        table.add_row(
            r.label,
            str(r.routers),
            f"{r.leads:,}",
            f"{r.rate:,.0f}",
            f"{r.rate / reference.rate:.2f}",
            f"{r.lock_ms_per_lead:.3f}",
        )
    return table


def run(options: Options, log: Log, *, leads: int = 6000, batch: int = 100) -> Report:
    with bench_database(options.pg_url, log) as url:
        log(f"routing replicas: {leads:,} leads per row, batches of {batch}, PostgreSQL")
        rendered = url.render_as_string(hide_password=False)
        results = measure_replicas(rendered, leads, batch, log)
    report = Report(title="Routing replicas", caption="", tables=[table(results)])
    mixed, split = results[1], results[2]
    report.checks.append(
        Check(
            "routers of different pools wait less for locks than routers of mixed leads",
            split.lock_ms_per_lead < mixed.lock_ms_per_lead,
            f"{split.lock_ms_per_lead:.3f} against {mixed.lock_ms_per_lead:.3f} ms per lead",
        )
    )
    return report


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leads", type=int, default=6000, help="leads per row")
    parser.add_argument("--batch", type=int, default=100, help="leads per transaction")


def main() -> int:
    return run_standalone(
        "python -m bench.routing_replicas",
        __doc__,
        _arguments,
        lambda options, log, args: run(options, log, leads=args.leads, batch=args.batch),
    )


if __name__ == "__main__":
    sys.exit(main())
