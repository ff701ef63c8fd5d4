"""A fault run: the load's mix posted while the plan's faults happen, then the run settles, then
the invariant report (``checks``), each check with what was expected and what was found.

A check with ``ok=None`` is a figure worth reading (posts, kills, 503s answered, duplicate
arrivals, time to settle), not a pass or fail: delivery is at least once, and 503 is what an
outage should get. ``lost`` and ``duplicated`` sum the effects missing and those that happened
twice: both must be 0.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.effects import Truth
from tests.support.evidence import LogFindings, dead_letters, read_logs, where_unconsumed
from tests.support.faults import Applied, Fault, apply_plan
from tests.support.load import Load
from tests.support.topology import GOOGLE_ADS_KEY, SECRET_KEY, Exit, Topology
from tests.support.verdict import (
    Check,
    duplicated_effects,
    equal,
    exact,
    missing_facts,
    outstanding,
    settle,
    strangers,
    undelivered,
    unfired,
    unrouted,
    unstored,
    wrong_lines,
    zero,
)

SETTLE_WITHIN_S = 240.0
DUPLICATES = (
    "posts stored more than once",
    "inputs scored more than once",
    "leads routed more than once",
    "leads made MQL more than once",
    "SLA tiers fired more than once",
    "SLA clocks closed more than once",
    "duplicates after dedupe by webhook-id",
)


@dataclass
class FaultRun:
    checks: list[Check] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    load_s: float = 0.0
    settle_s: float = 0.0
    logs: LogFindings = field(default_factory=LogFindings)
    lag_s: float = 0.0
    """The longest the harness's event loop was late (a stall would skew its timings)."""
    statuses: Counter[int | str] = field(default_factory=Counter)
    """Intake's answers to the load (``"connection error"`` when it was down)."""
    lost: int = 0
    duplicated: int = 0
    details: list[str] = field(default_factory=list)
    """Evidence behind failed checks: which posts, events, clocks, lines."""

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    def text(self) -> str:
        """The report as plain text, for an assertion message and docs/benchmarks.md."""
        rows = [
            f"{'FAIL' if c.ok is False else 'ok  ' if c.ok else '    '} {c.invariant}: "
            f"expected {c.expected}, got {c.actual}"
            for c in self.checks
        ]
        faults = [
            f"  at {a.began:5.1f}s ({a.took:4.1f}s) {a.fault.describe()} {a.error}"
            for a in self.applied
        ]
        return "\n".join([*rows, "faults:", *faults, "details:", *self.details])


async def fault_run(
    topology: Topology,
    plan: list[Fault],
    *,
    seconds: float,
    rate: float,
    seed: int = 20,
    settle_within: float = SETTLE_WITHIN_S,
) -> FaultRun:
    """Post for ``seconds`` at ``rate`` leads/s (and their follow-ups) while ``plan`` happens;
    settle; check."""
    load = Load(topology.intake_url, SECRET_KEY, GOOGLE_ADS_KEY, rate, seed)
    started = topology.journal.epoch = time.monotonic()  # the journal counts from here
    topology.journal.note(f"load: {rate:g} leads/s for {seconds:g}s, seed {seed}")
    lags: list[float] = []
    watching = asyncio.create_task(_watch_lag(lags))
    faults = asyncio.create_task(apply_plan(topology, plan, started))
    await load.run(seconds)
    run = FaultRun(applied=await faults, load_s=time.monotonic() - started)
    run.statuses = load.statuses
    topology.journal.note("load and faults over; settling")
    topics = {topology.topic("lifecycle"), topology.topic("sla")}
    crm = topology.deliveries
    truth, run.settle_s = await settle(topology.dsn, load, crm, topics, within=settle_within)
    topology.journal.note("settled" if run.settle_s < settle_within else "settle timed out")
    watching.cancel()
    run.lag_s = max(lags, default=0.0)
    run.logs = read_logs(topology.logs)
    dead = await dead_letters(
        topology.broker.bootstrap_servers, f"{topology.topic_prefix}.dead-letter"
    )
    if truth is None:
        run.checks = [Check("the database answered after the run", "yes", "never", False)]
        return run
    waiting = outstanding(truth, load, crm, topics)
    once = exact(truth, load, crm, topics)
    run.lost = sum(_number(c.actual) for c in waiting)
    run.duplicated = sum(_number(c.actual) for c in once if c.invariant in DUPLICATES)
    run.checks = [
        *_posts(load),
        *waiting,
        *once,
        *_health(topology, run, load, dead),
        zero("lost (effects still missing when the run settled)", run.lost),
        zero("duplicated (effects that happened twice)", run.duplicated),
        *_figures(load, topology, run, truth),
    ]
    run.details = _details(load, truth, topology, run, topics)
    if any(truth.unconsumed().values()):
        run.details += await where_unconsumed(
            topology.broker.bootstrap_servers, topology.topic_prefix, truth.unconsumed_rows()
        )
    return run


def _number(actual: str) -> int:
    """A check's count (``"1,234"``), or the sum of a per-consumer list (``"scoring 3"``)."""
    return sum(int(word.replace(",", "")) for word in actual.split() if word.strip(",").isdigit())


def _posts(load: Load) -> list[Check]:
    accepted = load.accepted_count
    return [
        equal("posts accepted (2xx), of those posted", sum(load.posted.values()), len(load.posts)),
        *(
            equal(f"  {kind} posts accepted", load.posted[kind], accepted[kind])
            for kind in sorted(load.posted)
        ),
    ]


def _health(topology: Topology, run: FaultRun, load: Load, dead: int | None) -> list[Check]:
    return [
        zero("faults that failed to apply", sum(bool(a.error) for a in run.applied)),
        zero("dead-lettered (process logs)", len(run.logs.dead_lettered)),
        Check(
            "dead-letter topic records (since the broker last started)",
            "0",
            "unreadable" if dead is None else str(dead),
            dead == 0,
        ),
        Check(
            "processes that exited on their own",
            "0",
            _exits(topology.journal.exits),
            not topology.journal.exits,
        ),
        zero("processes not stopping cleanly at the end (SIGTERM)", _unclean(topology)),
        zero("intake 5xx answers other than 503", load.server_errors),
    ]


def _figures(load: Load, topology: Topology, run: FaultRun, truth: Truth) -> list[Check]:
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(load.statuses.items(), key=str))
    kills = Counter(
        t for a in run.applied if a.fault.kind.startswith("kill") for t in a.fault.targets
    )
    kinds = Counter(a.fault.kind for a in run.applied)
    database = sum(n for kind, n in kinds.items() if kind.startswith("postgres"))
    crm = topology.crm
    received = crm.deliveries
    sla = Counter(r.type for r in truth.outbox if r.type.startswith("sla."))
    routed = f"{len(truth.events('lead.routed'))} / {len(truth.events('lead.queued'))}"
    logs = run.logs
    return [
        Check("posts by kind (accepted)", "", _by_kind(load.accepted_count), None),
        Check("follow-up scripts", "", _by_kind(load.scripts), None),
        Check("kills (SIGKILL) per process", "", _by_kind(kills), None),
        Check("broker restarts (empty)", "", str(kinds["broker-restart"]), None),
        Check("PostgreSQL restarts (restart, refusing then down, down)", "", str(database), None),
        Check(
            "CRM flaps (requests answered 5xx / dropped)",
            "",
            f"{crm.flaps} ({crm.refused['5xx']} / {crm.refused['drop']})",
            None,
        ),
        Check("intake answers (retries included)", "2xx, 503 in outages", statuses, None),
        Check("2xx replaying a stored answer", "after a lost answer", f"{load.replayed}", None),
        Check("events delivered (distinct webhook-ids)", "", f"{len(received.first):,}", None),
        Check("duplicate arrivals (same webhook-id)", "allowed", f"{received.duplicates:,}", None),
        Check("SLA events", "", _by_kind(sla), None),
        Check("leads routed / queued", "", routed, None),
        Check("time to settle after the load and the faults", "", f"{run.settle_s:.1f} s", None),
        Check("harness event loop late by, at most", "", f"{run.lag_s:.2f} s", None),
        Check("log lines: error / critical / tracebacks", "",
              f"{logs.count('error')} / {logs.count('critical')} / {logs.tracebacks}", None),
    ]  # fmt: skip


def _by_kind(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {n:,}" for kind, n in sorted(counts.items())) or "0"


def _unclean(topology: Topology) -> int:
    return sum(code != 0 for s in topology.services.values() for code in s.stop_codes)


async def _watch_lag(lags: list[float], every: float = 0.1) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(every)
        lags.append(time.monotonic() - before - every)


def _exits(exits: list[Exit]) -> str:
    return ", ".join(f"{e.service} (code {e.code} at {e.at:.0f}s)" for e in exits) or "0"


def _details(
    load: Load, truth: Truth, topology: Topology, run: FaultRun, topics: set[str]
) -> list[str]:
    crm = topology.deliveries
    details = [f"abandoned: {problem}" for problem in load.abandoned[:5]]
    details += [f"not stored: {item}" for item in unstored(truth, load)[:5]]
    unscored = [lead for lead, n in truth.inputs.items() if truth.scored[lead] != n][:5]
    details += [
        f"lead {lead}: {truth.inputs[lead]} inputs, {truth.scored[lead]} scores"
        for lead in unscored
    ]
    details += [f"not processed by {c}: {n}" for c, n in truth.unconsumed().items() if n]
    details += [
        f"MQL never routed: {lead} ({', '.join(r.type for r in truth.outbox if r.lead == lead)})"
        for lead in sorted(unrouted(truth))[:5]
    ]
    details += [f"not delivered: {item}" for item in undelivered(truth, crm, topics)[:10]]
    details += [f"unknown event delivered: {item}" for item in strangers(truth, crm, topics)[:5]]
    details += [f"tier never fired: {item}" for item in unfired(truth)[:10]]
    details += [f"no funnel fact: {item}" for item in missing_facts(truth)[:5]]
    details += [f"funnel line: {item}" for item in wrong_lines(truth, load)[:5]]
    details += [f"webhook message {item}" for item in truth.webhook_problems[:5]]
    if duplicated_effects(truth, crm):
        details.append("duplicated effects delivered: see the CRM's deliveries by lead")
    details += run.logs.dead_lettered[:10]
    details += [f"{n}× {message}" for message, n in run.logs.messages.most_common(15)]
    return details
