"""After the load: wait until the pipeline has caught up, then check what must hold.

What the database says is the truth the deliveries are checked against: a lead scored has a
``lead.scored`` entry in its history (with the event's id), a lead that reached MQL a ``lead.mql``
entry (with the stage event's id). Every accepted lead must be stored, scored once, and every
event its history names delivered, in order (``lead.scored`` before ``lead.mql``); no event may
be delivered that the history does not name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg

from tests.support.deliveries import Deliveries, Delivery

KINDS = ("lead.scored", "lead.mql")
HISTORY_SQL = """
    SELECT l.id::text AS lead, l.scored_at IS NOT NULL AS scored, h.kind, h.event_id::text AS event
    FROM leads l
    LEFT JOIN lead_history h ON h.lead_id = l.id AND h.kind = ANY($2::text[])
    WHERE l.id = ANY($1::uuid[])
"""


@dataclass
class LeadState:
    scored: bool = False
    events: dict[str, list[str]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    """History kind → the ids of its events."""


@dataclass
class Stored:
    """The database's view of the accepted leads."""

    leads: dict[str, LeadState]

    def missing_deliveries(self, deliveries: Deliveries) -> int:
        return sum(
            event not in deliveries.first
            for state in self.leads.values()
            for ids in state.events.values()
            for event in ids
        )

    def caught_up(self, accepted: dict[str, float], deliveries: Deliveries) -> bool:
        return (
            len(self.leads) == len(accepted)
            and all(state.scored for state in self.leads.values())
            and self.missing_deliveries(deliveries) == 0
        )


async def read_stored(dsn: str, leads: list[str]) -> Stored:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await connection.fetch(HISTORY_SQL, leads, list(KINDS))
    finally:
        await connection.close()
    states: dict[str, LeadState] = {}
    for row in rows:
        state = states.setdefault(row["lead"], LeadState(scored=row["scored"]))
        if row["kind"] is not None:
            state.events[row["kind"]].append(row["event"])
    return Stored(states)


async def drain(
    dsn: str, accepted: dict[str, float], deliveries: Deliveries, *, within: float
) -> tuple[Stored, float]:
    """Poll until every accepted lead is stored, scored and its events delivered, or until
    ``within`` seconds have passed; the last view and the seconds it took."""
    started = time.monotonic()
    leads = sorted(accepted)
    while True:
        try:
            stored = await read_stored(dsn, leads)
        except (OSError, asyncpg.PostgresError):  # a fault's tail: the server is starting up
            stored = Stored({})
        took = time.monotonic() - started
        if stored.caught_up(accepted, deliveries) or took > within:
            return stored, took
        await asyncio.sleep(1.0)


@dataclass
class Findings:
    scored_delivered: int = 0
    mql_leads: int = 0
    mql_delivered: int = 0
    mql_to_non_mql: int = 0
    unknown: list[Delivery] = field(default_factory=list)
    """Delivered events about accepted leads that their history does not name."""
    out_of_order: list[str] = field(default_factory=list)
    """Leads whose ``lead.mql`` arrived before their ``lead.scored``."""
    scored_more_than_once: int = 0
    strangers: int = 0
    """Delivered events about leads the load never saw accepted."""
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    """Event type → seconds from the lead's 202 to the event's first arrival."""
    slowest: dict[str, tuple[float, Delivery]] = field(default_factory=dict)
    """Event type → the longest of those latencies, with its delivery."""

    def add(self, state: LeadState, got: list[Delivery], accepted_at: float) -> None:
        named = {event for ids in state.events.values() for event in ids}
        self.unknown.extend(d for d in got if d.event_id not in named)
        order = [d.type for d in got if d.event_id in named]
        scored, mql = state.events["lead.scored"], state.events["lead.mql"]
        delivered = {d.event_id for d in got}
        self.scored_more_than_once += len(scored) > 1
        self.scored_delivered += bool(scored) and delivered.issuperset(scored)
        self.mql_leads += bool(mql)
        self.mql_delivered += bool(mql) and delivered.issuperset(mql)
        self.mql_to_non_mql += not mql and any(d.type == "lead.mql" for d in got)
        if "lead.mql" in order and (
            "lead.scored" not in order or order.index("lead.mql") < order.index("lead.scored")
        ):
            self.out_of_order.append(got[0].lead_id)
        for delivery in got:
            if delivery.type in self.latencies:
                latency = delivery.at - accepted_at
                self.latencies[delivery.type].append(latency)
                if latency > self.slowest.get(delivery.type, (0.0, delivery))[0]:
                    self.slowest[delivery.type] = (latency, delivery)


def examine(stored: Stored, accepted: dict[str, float], deliveries: Deliveries) -> Findings:
    findings = Findings()
    for lead, accepted_at in accepted.items():
        state = stored.leads.get(lead, LeadState())
        findings.add(state, deliveries.by_lead.get(lead, []), accepted_at)
    findings.strangers = sum(
        len(got) for lead, got in deliveries.by_lead.items() if lead not in accepted
    )
    return findings
