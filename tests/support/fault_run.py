"""A fault run: leads posted at a fixed rate while the plan's faults happen, then a drain, then
the invariant report (``checks``), each check with what was expected and what was found.

A check with ``ok=None`` is a figure worth reading (503s answered, duplicates delivered,
latency), not a pass or fail: delivery is at least once, and 503 is what an outage should get.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.support.evidence import LogFindings, dead_letters, read_logs
from tests.support.faults import Applied, Fault, apply_plan
from tests.support.invariants import Findings, Stored, drain, examine
from tests.support.load import Load
from tests.support.topology import SECRET_KEY, Exit, Topology

DRAIN_WITHIN_S = 240.0


@dataclass(frozen=True)
class Check:
    invariant: str
    expected: str
    actual: str
    ok: bool | None


@dataclass
class FaultRun:
    checks: list[Check] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    load_s: float = 0.0
    drain_s: float = 0.0
    logs: LogFindings = field(default_factory=LogFindings)
    lag_s: float = 0.0
    """The longest the harness's event loop was late (a stall would skew its timings)."""
    statuses: Counter[int | str] = field(default_factory=Counter)
    """Intake's answers to the load (``"connection error"`` when it was down)."""
    details: list[str] = field(default_factory=list)
    """Evidence behind failed checks: which leads, which lines."""

    @property
    def ok(self) -> bool:
        return all(check.ok is not False for check in self.checks)

    def text(self) -> str:
        """The report as plain text, for an assertion message."""
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
    drain_within: float = DRAIN_WITHIN_S,
) -> FaultRun:
    """Post for ``seconds`` at ``rate`` leads/s while ``plan`` happens; drain; check."""
    load = Load(f"{topology.intake_url}/v1/leads", SECRET_KEY, rate)
    started = topology.journal.epoch = time.monotonic()  # the journal counts from here
    topology.journal.note(f"load: {rate:g} leads/s for {seconds:g}s")
    lags: list[float] = []
    watching = asyncio.create_task(_watch_lag(lags))
    faults = asyncio.create_task(apply_plan(topology, plan, started))
    await load.run(seconds)
    run = FaultRun(applied=await faults, load_s=time.monotonic() - started)
    run.statuses = load.statuses
    topology.journal.note("load over; draining")
    stored, run.drain_s = await drain(
        topology.dsn, load.accepted, topology.deliveries, within=drain_within
    )
    topology.journal.note("drained" if run.drain_s < drain_within else "drain timed out")
    watching.cancel()
    run.lag_s = max(lags, default=0.0)
    run.logs = read_logs(topology.logs)
    dead = await dead_letters(
        topology.broker.bootstrap_servers, f"{topology.topic_prefix}.dead-letter"
    )
    findings = examine(stored, load.accepted, topology.deliveries)
    run.checks = _checks(load, stored, findings, topology, run, dead)
    run.details = _details(load, stored, findings, topology, run)
    return run


def _checks(
    load: Load,
    stored: Stored,
    findings: Findings,
    topology: Topology,
    run: FaultRun,
    dead: int | None,
) -> list[Check]:
    accepted = len(load.accepted)
    scored = sum(state.scored for state in stored.leads.values())
    failed_faults = sum(bool(a.error) for a in run.applied)
    return [
        _equal("faults applied", len(run.applied), len(run.applied) - failed_faults),
        _equal("leads accepted (202), of those posted", load.posted, accepted),
        _equal("accepted leads stored in the database", accepted, len(stored.leads)),
        _equal("accepted leads scored (scored_at set)", accepted, scored),
        _equal("leads scored more than once", 0, findings.scored_more_than_once),
        _equal(
            "accepted leads whose lead.scored was delivered", accepted, findings.scored_delivered
        ),
        _equal(
            "MQL leads whose lead.mql was delivered", findings.mql_leads, findings.mql_delivered
        ),
        _equal("leads not MQL whose lead.mql was delivered", 0, findings.mql_to_non_mql),
        _equal("delivered events the database does not name", 0, len(findings.unknown)),
        _equal("leads whose lead.mql came before lead.scored", 0, len(findings.out_of_order)),
        _equal(
            "deliveries whose webhook-id is not the event id", 0, topology.deliveries.mislabelled
        ),
        _equal("dead-lettered (process logs)", 0, len(run.logs.dead_lettered)),
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
        _equal("processes not stopping cleanly at the end (SIGTERM)", 0, _unclean(topology)),
        _equal("intake 5xx answers other than 503", 0, load.server_errors),
        *_figures(load, findings, topology, run),
    ]


def _equal(invariant: str, expected: int, actual: int) -> Check:
    return Check(invariant, f"{expected:,}", f"{actual:,}", actual == expected)


def _figures(load: Load, findings: Findings, topology: Topology, run: FaultRun) -> list[Check]:
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(load.statuses.items(), key=str))
    logs = run.logs
    return [
        Check("intake answers (posts, retries included)", "202, 503 in outages", statuses, None),
        Check("503 answers", "some, in outages", f"{load.statuses.get(503, 0):,}", None),
        Check("202s replaying a stored answer", "after a lost answer", f"{load.replayed}", None),
        Check("duplicate deliveries", "allowed", f"{topology.deliveries.duplicates:,}", None),
        Check("deliveries about leads never accepted", "0", f"{findings.strangers}", None),
        Check("202 → lead.scored delivered, p50 / max", "", _spread(findings, "lead.scored"), None),
        Check("202 → lead.mql delivered, p50 / max", "", _spread(findings, "lead.mql"), None),
        Check("drain after the load and the last fault", "", f"{run.drain_s:.1f} s", None),
        Check("harness event loop late by, at most", "", f"{run.lag_s:.2f} s", None),
        Check(
            "log lines: error / critical / tracebacks",
            "",
            f"{logs.count('error')} / {logs.count('critical')} / {logs.tracebacks}",
            None,
        ),
    ]


def _unclean(topology: Topology) -> int:
    return sum(code != 0 for s in topology.services.values() for code in s.stop_codes)


async def _watch_lag(lags: list[float], every: float = 0.1) -> None:
    while True:
        before = time.monotonic()
        await asyncio.sleep(every)
        lags.append(time.monotonic() - before - every)


def _spread(findings: Findings, kind: str) -> str:
    values = sorted(findings.latencies[kind])
    if not values:
        return "–"
    return f"{values[len(values) // 2]:.2f} s / {values[-1]:.2f} s"


def _exits(exits: list[Exit]) -> str:
    return ", ".join(f"{e.service} (code {e.code} at {e.at:.0f}s)" for e in exits) or "0"


def _details(
    load: Load, stored: Stored, findings: Findings, topology: Topology, run: FaultRun
) -> list[str]:
    details = [f"abandoned: {problem}" for problem in load.abandoned[:5]]
    unscored = [lead for lead, s in stored.leads.items() if not s.scored][:5]
    details += [f"not scored: {lead}" for lead in unscored]
    missing = [lead for lead in load.accepted if lead not in stored.leads][:5]
    details += [f"not stored: {lead}" for lead in missing]
    undelivered = [
        f"{kind} {event} of lead {lead}"
        for lead, state in stored.leads.items()
        for kind, ids in state.events.items()
        for event in ids
        if event not in topology.deliveries.first
    ]
    details += [f"not delivered: {item}" for item in undelivered[:10]]
    details += [f"out of order: lead {lead}" for lead in findings.out_of_order[:10]]
    details += [f"unknown event delivered: {d}" for d in findings.unknown[:5]]
    for kind, (latency, slow) in sorted(findings.slowest.items()):
        delivered = slow.at - load.started
        details.append(
            f"slowest {kind}: lead {slow.lead_id}, delivered {latency:.1f}s after its 202, "
            f"{delivered:.1f}s into the load"
        )
    details += run.logs.dead_lettered[:10]
    details += [f"{n}× {message}" for message, n in run.logs.messages.most_common(15)]
    return details
