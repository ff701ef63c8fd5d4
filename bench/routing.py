"""``python -m bench.routing [--leads N] [--batch B]`` (also ``make bench``): what routing adds
to scoring, per lead.

1. The pure decision (``router.route``): 10 CEL rules, 2,000 customer accounts (domain, then
   fuzzy name), a pool of 20 reps with hours, caps and the fairness ledger. One core, no I/O.
2. ``route_leads`` inside the transaction, as the scoring process's router calls it: one call
   per round of B leads (a round takes up to ``pending.BATCH``), on SQLite and on PostgreSQL:
   one read of the leads and their submissions, the decisions, one update, one outbox write;
   plus the commit-time write of loads, ledger, assignments and history. "Added per lead" =
   (call + commit-time write) / B, one value per batch, so p50/p99 are over batches. Budget:
   2 ms p99 per lead.
3. Replicas (``bench.routing_replicas``): leads/s on PostgreSQL with one router and with three
   router processes at once, and the time their steps spent taking their pool and rep locks.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from rich.table import Table
from sqlalchemy import event, insert

import services.tables  # noqa: F401 - every table on the metadata
from bench.intake import bench_database
from bench.suite import Check, Log, Options, Report, quantile, run_standalone
from services.routing import store
from services.routing.assign import route_leads
from services.routing.router import Situation, route
from services.routing.schemas import AccountIn, RepIn, TeamIn
from services.routing.store import forget_cached_directories, load_directory
from services.routing.versions import ROUTING
from services.settings import load_settings
from shared.auth import Caller
from shared.config import Settings
from shared.cosign import store as cosigned
from shared.db import make_engine, make_sessions
from shared.ids import new_id
from shared.migrate import upgrade
from shared.models import Inquiry, Lead

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
BUDGET_MS = 2.0
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "ES", "NL", "SE"]
RULES = """
name: bench
default_queue: inside
rules:
  - {id: enterprise, when: "lead.employees >= 5000", team: named}
  - {id: dach-large, when: "lead.country in ['DE','AT','CH'] && lead.employees >= 500", team: named}
  - {id: fintech, when: "lead.industry == 'fintech' && lead.employees >= 200", team: named}
  - {id: japan, when: "lead.country == 'JP'", team: apac, match: [language]}
  - {id: india, when: "lead.country == 'IN'", team: apac}
  - {id: brazil, when: "lead.country == 'BR' && lead.product == 'platform'", team: latam}
  - {id: students, when: "lead.email_domain.endsWith('.edu')", team: inside}
  - {id: partners, when: "lead.source == 'partner'", team: named}
  - {id: big-smb, when: "lead.employees >= 200 && lead.employees < 500", team: inside}
  - {id: nordics, when: "lead.country in ['SE','NO','DK','FI']", team: inside, match: [territory]}
"""


@dataclass
class Measured:
    label: str
    leads: int
    per_lead_ms: list[float]
    seconds: float

    def quantile(self, q: float) -> float:
        return quantile(self.per_lead_ms, q)

    @property
    def rate(self) -> float:
        return self.leads / self.seconds


async def routing_directory(session: Any, settings: Settings) -> None:
    """Four teams, 20 reps, 2,000 customer accounts and the 10 rules above, activated."""
    for name in ("inside", "named", "apac", "latam"):
        await store.put_team(session, TeamIn(name=name), NOW)
    for i in range(20):
        teams = ["inside"] if i < 12 else ["named"] if i < 16 else ["apac", "latam"]
        await store.put_rep(
            session,
            RepIn(
                email=f"rep{i}@seller.example",
                name=f"Rep {i}",
                teams=teams,
                weight=1 + i % 3,
                max_open=100_000,
                max_per_day=100_000,
                languages=["en", "ja"] if i >= 16 else ["en"],
                territories=["SE", "NO", "DK", "FI", "US"],
                time_zone="UTC",
            ),
            NOW,
        )
    for i in range(2000):
        await store.put_account(
            session,
            AccountIn(
                name=f"Customer {i} Holdings",
                domain=f"customer{i}.example",
                owner_email="rep0@seller.example",
            ),
            NOW,
        )
    row = await cosigned.propose(session, ROUTING, RULES, by="bench", now=NOW)
    for side in ("marketing", "sales"):
        signer = Caller(f"bench-{side}", frozenset({f"approver:{side}"}))
        await cosigned.approve(
            session,
            ROUTING,
            row.version,
            caller=signer,
            side=side,
            signed_hash=row.content_hash,
            now=NOW,
        )
    await cosigned.activate(session, settings, ROUTING, row.version, by="bench", now=NOW)


def lead_facts(i: int) -> dict[str, Any]:
    return {
        "email": f"buyer{i}@prospect{i}.example",
        "company": f"Prospect {i} Ltd" if i % 10 else f"Customer {i % 2000} Holding",
        "country": COUNTRIES[i % len(COUNTRIES)],
        "employees": (i * 37) % 8000,
        "industry": "fintech" if i % 4 == 0 else "software",
        "language": "ja" if i % 10 == 4 else "en",
        "product": "platform",
    }


async def add_leads(session: Any, count: int) -> list[UUID]:
    ids, leads, inquiries = [], [], []
    for i in range(count):
        f = lead_facts(i)
        lead_id = new_id()
        ids.append(lead_id)
        leads.append(
            {"id": lead_id, "email": f["email"], "company": f["company"], "source": "web"}
            | {"stage": "mql", "created_at": NOW, "updated_at": NOW}
        )
        custom = {k: f[k] for k in ("country", "employees", "industry", "language", "product")}
        inquiries.append(
            {"id": new_id(), "lead_id": lead_id, "source": "web", "received_at": NOW}
            | {"submission": {"company": f["company"], "custom": custom}}
        )
    for start in range(0, count, 1000):
        await session.execute(insert(Lead.__table__), leads[start : start + 1000])
        await session.execute(insert(Inquiry.__table__), inquiries[start : start + 1000])
    return ids


async def measure_database(url: str, label: str, count: int, batch: int, log: Log) -> Measured:
    settings = load_settings(db={"url": url})
    engine = make_engine(settings.db)
    await upgrade(engine)
    sessions = make_sessions(engine)
    async with sessions.begin() as session:
        await routing_directory(session, settings)
        leads = await add_leads(session, count + batch)
    forget_cached_directories()
    flush_s: list[float] = []
    started: list[float] = []

    def before(_: Any) -> None:
        started.append(time.perf_counter())

    def after(_: Any) -> None:
        flush_s.append(time.perf_counter() - started.pop())

    per_lead: list[float] = []
    total = 0.0
    try:
        async with sessions.begin() as session:  # warm-up: caches, prepared statements
            await route_leads(session, leads[:batch], now=NOW, settings=settings)
        from sqlalchemy.orm import Session

        event.listen(Session, "before_commit", before)
        event.listen(Session, "after_commit", after)
        for start in range(batch, count + batch, batch):
            chunk = leads[start : start + batch]
            t0 = time.perf_counter()
            async with sessions.begin() as session:
                t = time.perf_counter()
                await route_leads(session, chunk, now=NOW, settings=settings)
                call = time.perf_counter() - t
            total += time.perf_counter() - t0
            per_lead.extend([(call + flush_s[-1]) * 1000 / len(chunk)] * len(chunk))
        log(f"  {label}: {count:,} leads in {total:.2f}s")
    finally:
        event.remove(Session, "before_commit", before)
        event.remove(Session, "after_commit", after)
        await engine.dispose()
    return Measured(label, count, per_lead, total)


def measure_pure(count: int, url: str) -> Measured:
    async def load() -> Any:
        settings = load_settings(db={"url": url})
        engine = make_engine(settings.db)
        try:
            async with make_sessions(engine)() as session:
                return await load_directory(session, "bench")
        finally:
            await engine.dispose()

    directory = asyncio.run(load())
    from services.routing.facts import routing_facts

    class Row:
        def __init__(self, f: dict[str, Any]) -> None:
            self.email, self.company, self.source, self.stage, self.score = (
                f["email"],
                f["company"],
                "web",
                "mql",
                0,
            )

    facts = [routing_facts(Row(f), [{"custom": f}]) for f in map(lead_facts, range(count))]
    ledgers: dict[UUID, Any] = {}
    times = []
    t0 = time.process_time()
    for lead in facts:
        t = time.perf_counter()
        decision = route(directory, Situation(lead, NOW, ledgers=ledgers))
        times.append((time.perf_counter() - t) * 1000)
        if decision.ledger is not None and decision.team is not None:
            ledgers[decision.team.id] = decision.ledger
    return Measured("pure decision (router.route), CPU", count, times, time.process_time() - t0)


def run(options: Options, log: Log, *, leads: int = 20_000, batch: int = 500) -> Report:
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite+aiosqlite:///{folder}/routing.db"
        log(f"routing: {leads:,} leads, batches of {batch}, SQLite")
        results.append(asyncio.run(measure_database(sqlite, "SQLite", leads, batch, log)))
        log("routing: pure decision")
        results.insert(0, measure_pure(leads, sqlite))
    with bench_database(options.pg_url, log) as url:
        log(f"routing: {leads:,} leads, batches of {batch}, PostgreSQL")
        rendered = url.render_as_string(hide_password=False)
        results.append(asyncio.run(measure_database(rendered, "PostgreSQL", leads, batch, log)))
    table = Table(
        title="Routing: time added to scoring per lead",
        caption=(
            "Database rows: route_leads once per routing round's transaction; per lead = (call + "
            "commit-time write) / batch, p50/p99 over batches; leads/s = routing alone, one "
            "process, one connection. Pure row: per lead, CPU. Budget: p99 < 2 ms per lead."
        ),
        caption_justify="left",
    )
    for heading in ("What", "Leads", "p50 ms", "p99 ms", "max ms", "Leads/s"):
        table.add_column(heading, justify="right" if heading != "What" else "left")
    report = Report(title="Routing", caption="", tables=[table])
    # Imported here: bench.routing_replicas builds on this module's directory and leads.
    from bench import routing_replicas

    replicas = routing_replicas.run(options, log)
    report.tables += replicas.tables
    report.checks += replicas.checks
    for m in results:
        table.add_row(
            m.label,
            f"{m.leads:,}",
            f"{statistics.median(m.per_lead_ms):.3f}",
            f"{m.quantile(0.99):.3f}",
            f"{max(m.per_lead_ms):.3f}",
            f"{m.rate:,.0f}",
        )
        report.checks.append(
            Check(
                f"{m.label}: p99 under {BUDGET_MS} ms",
                m.quantile(0.99) < BUDGET_MS,
                f"p99 {m.quantile(0.99):.3f} ms",
            )
        )
    return report


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--leads", type=int, default=20_000, help="leads per database run")
    parser.add_argument("--batch", type=int, default=500, help="leads per transaction")


def main() -> int:
    return run_standalone(
        "python -m bench.routing",
        __doc__,
        _arguments,
        lambda options, log, args: run(options, log, leads=args.leads, batch=args.batch),
    )


if __name__ == "__main__":
    sys.exit(main())
