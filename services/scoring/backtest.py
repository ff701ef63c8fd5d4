"""Backtest: what a proposed ruleset would have done to past leads, next to the active one.

Each lead of the window is judged by both versions as of its peak (its last activity, or its
arrival): below the MQL bar → ``inquiry``; a disqualifier → ``disqualified``; the MQL bar met →
``mql``; and if sales did accept it (it has a SAL time) and the SQL criteria hold → ``sql``.
The report counts the leads whose stage would change, MQL and SQL volumes by source, and how
the changed leads actually converted. ``simulate``/``Report`` are pure; ``run`` reads the DB.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.facts import Activity, LeadFacts, facts_of
from services.scoring.rules import qualify
from services.scoring.ruleset import CompiledRuleset
from shared.models import Lead

QUALIFIED = ("mql", "sql")
TOTALS = ("mql_active", "mql_proposed", "sql_active", "sql_proposed")
CHUNK = 2000


@dataclass(frozen=True, slots=True)
class PastLead:
    source: str
    facts: LeadFacts
    activities: Sequence[Activity]
    as_of: datetime
    accepted: bool = False
    opportunity: bool = False
    booked: bool = False


def simulate(lead: PastLead, ruleset: CompiledRuleset) -> str:
    decision = qualify(lead.facts, lead.activities, ruleset, now=lead.as_of)
    if decision.disqualified is not None:
        return "disqualified"
    if not decision.mql.met:
        return "inquiry"
    return "sql" if lead.accepted and decision.sql.met else "mql"


@dataclass
class Report:
    active: str
    proposed: str
    since: datetime
    until: datetime
    leads: int = 0
    changed: int = 0
    moves: Counter[str] = field(default_factory=Counter)
    by_source: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    converted: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, lead: PastLead, before: str, after: str) -> None:
        self.leads += 1
        counts = self.by_source[lead.source]
        for version, stage in (("active", before), ("proposed", after)):
            counts[f"mql_{version}"] += stage in QUALIFIED
            counts[f"sql_{version}"] += stage == "sql"
        if before == after:
            return
        self.changed += 1
        self.moves[f"{before}→{after}"] += 1
        if (before in QUALIFIED) != (after in QUALIFIED):
            group = self.converted["gained_mql" if after in QUALIFIED else "lost_mql"]
            group["leads"] += 1
            group["opportunities"] += lead.opportunity
            group["bookings"] += lead.booked

    def as_dict(self) -> dict[str, Any]:
        sources = {s: dict(sorted(c.items())) for s, c in sorted(self.by_source.items())}
        totals: Counter[str] = Counter()
        for counts in self.by_source.values():
            totals.update(counts)
        empty = {"leads": 0, "opportunities": 0, "bookings": 0}
        return {
            "active": self.active,
            "proposed": self.proposed,
            "since": self.since,
            "until": self.until,
            "leads": self.leads,
            "changed": self.changed,
            "moves": dict(sorted(self.moves.items())),
            "totals": {k: totals[k] for k in TOTALS},
            "by_source": sources,
            "changed_leads_converted": {
                k: {**empty, **self.converted.get(k, {})} for k in ("gained_mql", "lost_mql")
            },
        }


async def run(
    session: AsyncSession,
    active: tuple[str, CompiledRuleset],
    proposed: tuple[str, CompiledRuleset],
    *,
    now: datetime,
    days: int = 90,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> Report:
    since = now - timedelta(days=days)
    report = Report(active[0], proposed[0], since, now)
    window = (Lead.created_at >= since, Lead.created_at <= now)
    total = int(await session.scalar(select(func.count()).select_from(Lead).where(*window)) or 0)
    progress(0, total)
    after = None
    while True:
        query = select(Lead).where(*window).order_by(Lead.id).limit(CHUNK)
        chunk = list(
            await session.scalars(query if after is None else query.where(Lead.id > after))
        )
        if not chunk:
            return report
        ids = [lead.id for lead in chunk]
        activities = await store.activities_of(session, ids)
        submissions = await store.submissions_of(session, ids)
        for lead in chunk:
            past = _past(lead, activities.get(lead.id, []), submissions.get(lead.id, []), now)
            report.add(past, simulate(past, active[1]), simulate(past, proposed[1]))
        after = ids[-1]
        progress(report.leads, total)


def _past(lead: Lead, activities: list[Activity], submissions: list, now: datetime) -> PastLead:
    peak = max((a.occurred_at for a in activities), default=lead.created_at)
    facts = facts_of(lead, submissions)
    return PastLead(
        source=lead.source,
        facts=replace(facts, stage="inquiry"),
        activities=activities,
        as_of=min(peak, now),
        accepted=lead.sal_at is not None,
        opportunity=lead.opportunity_at is not None,
        booked=lead.won_at is not None,
    )
