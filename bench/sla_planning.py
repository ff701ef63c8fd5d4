"""``python -m bench.sla_planning [--leads N]``: what the SLA monitor's pure code spends to plan
the clocks of a routed lead (issue 21: its CPU per lead).

``leadflow dev``'s sample policies, ``N`` routed MQLs: for each, the first-response and the
acceptance clock planned as ``lead.routed`` plans them (``tracking.plan_clock``: the policy
chosen by its condition, the calendar, the ladder, the clock's row and its ``sla.started``). No
database: the time is the pure code's alone. Best of five rounds, in microseconds per lead and
per clock, beside the machine pace measured in the same run (``bench.suite.machine_pace``) and
the figure divided by it, the one to compare across hours.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from uuid import uuid4

from rich.console import Console
from rich.table import Table

from bench.suite import machine_pace
from services.sla_monitor.clocks import Opening
from services.sla_monitor.policy import compile_policies
from services.sla_monitor.sample import SAMPLE_POLICIES
from services.sla_monitor.tracking import plan_clock

KINDS = ("first_response", "acceptance")


def _lead(now: datetime) -> SimpleNamespace:
    """The columns ``plan_clock`` reads of a lead row."""
    return SimpleNamespace(
        id=uuid4(), stage="mql", fit_grade="B", score=40, engagement_score=10, source="web",
        country="DE", is_expansion=False, is_test=False, erased_at=None, created_at=now,
    )  # fmt: skip


def plan_round(leads: list[SimpleNamespace], now: datetime) -> float:
    """Seconds to plan every lead's clocks once."""
    live = (1, compile_policies(SAMPLE_POLICIES))
    forms = [{"email": "ada@example.com", "employees": 50}]
    started = time.perf_counter()
    for lead in leads:
        for kind in KINDS:
            opening = Opening(lead.id, kind, now, uuid4(), "rep@example.com", "inbound", "web", 1.0)
            if plan_clock(opening, lead, forms, live, now=now) is None:
                raise RuntimeError(f"no {kind} clock planned: the sample policies changed")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sla_planning", description=__doc__)
    parser.add_argument("--leads", type=int, default=3000, help="routed leads per round (3000)")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    leads = [_lead(now) for _ in range(args.leads)]
    pace_before = machine_pace()
    best = min(plan_round(leads, now) for _ in range(5))
    pace_after = machine_pace()
    pace = (pace_before + pace_after) / 2
    per_lead_us = best / args.leads * 1e6
    table = Table(title=f"SLA clock planning, sample policies, {args.leads:,} routed MQLs")
    for heading in ("µs per lead (2 clocks)", "µs per clock", "machine pace ms", "÷ pace"):
        table.add_column(heading, justify="right")
    table.add_row(
        f"{per_lead_us:.1f}",
        f"{per_lead_us / len(KINDS):.1f}",
        f"{pace_before:.0f} / {pace_after:.0f}",
        f"{per_lead_us / pace:.2f}",
    )
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
