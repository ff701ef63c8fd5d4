"""What the database holds after a fault run, read in one go (``read_truth``): the posts stored,
the inputs scored, the outbox, what each consumer processed, the webhook queue, the reps' loads,
the SLA clocks and the funnel. The database is the truth the CRM's deliveries are held against.

A run is the database of its own, so every row in it is the run's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import orjson

from services.analytics import main as analytics
from services.analytics.handlers import AnalyticsHandler
from services.handoff import main as handoff
from services.handoff.handlers import HandoffHandler
from services.routing import main as routing
from services.routing.handlers import RoutingHandler
from services.scoring import main as scoring
from services.scoring.handlers import ScoringHandler
from services.sla_monitor import main as sla_monitor
from services.sla_monitor import notifier
from services.sla_monitor.handlers import SlaHandler
from services.webhooks.matching import receives
from shared.events import event_types
from tests.support.topology import EVENT_TYPES

FACT_TYPES = frozenset(
    {"lead.received", "lead.mql", "lead.sql", "lead.outcome", "lead.routed", "lead.queued",
     "lead.reassigned", "lead.recycled", "lead.disqualified"}
)  # fmt: skip
"""The events the analytics consumer keeps a fact of (services/analytics/facts.py)."""
INPUTS = ("lead.received", "lead.activity", "lead.outcome")
"""The events scoring scores a lead on, each once."""
TIERS = ("sla.started", "sla.warning", "sla.breached", "sla.escalated")
CLOSINGS = ("sla.met", "sla.cancelled")

HANDLERS = {
    scoring.CONSUMER: ScoringHandler,
    routing.CONSUMER: RoutingHandler,
    handoff.CONSUMER: HandoffHandler,
    sla_monitor.CONSUMER: SlaHandler,
    notifier.CONSUMER: notifier.Notifier,
    analytics.CONSUMER: AnalyticsHandler,
}
"""Each consumer's handler, whose ``handles`` types are the events it records as processed
(``shared.consumer.handled``); the webhooks consumer records every event of its topics."""
HANDLED = {
    consumer: frozenset(t for t, kind in event_types().items() if issubclass(kind, handler.handles))
    for consumer, handler in HANDLERS.items()
}


OUTBOX_SQL = """
    SELECT id::text AS id, topic, type, aggregate_id AS lead, published_at IS NOT NULL AS published,
           CASE WHEN type LIKE 'sla.%' THEN (payload::jsonb)->'data'->>'clock_id' END AS clock,
           CASE WHEN type LIKE 'sla.%' THEN (payload::jsonb)->'data'->>'tier' END AS tier
    FROM outbox
"""
CLOCKS_SQL = """
    SELECT id::text AS id, lead_id::text AS lead, kind, state, tiers, next_due_at, closed_at
    FROM sla_clocks
"""
REPS_SQL = """
    SELECT r.email, r.max_open, r.open_leads,
           (SELECT count(*) FROM leads l WHERE l.owner_id = r.id AND l.routing_status = 'routed')
             AS owning
    FROM routing_reps r
"""
LINES_SQL = """
    SELECT lead_id::text AS lead, mql_at IS NOT NULL AS mql,
           opportunity_at IS NOT NULL AS opportunity, booked_at IS NOT NULL AS booked
    FROM analytics_leads
"""
OUTCOMES_SQL = "SELECT id::text AS id, lead_id::text AS lead, outcome FROM lead_outcomes"


@dataclass(frozen=True)
class OutboxRow:
    id: str
    topic: str
    type: str
    lead: str
    published: bool
    clock: str | None
    tier: str | None


@dataclass(frozen=True)
class Clock:
    id: str
    lead: str
    kind: str
    state: str
    dues: tuple[datetime, ...]
    """Each tier's due time, tier 1 first."""
    next_due_at: datetime | None
    closed_at: datetime | None
    passed: frozenset[int] = frozenset()
    """Tiers passed over (after an acknowledgement, or a warning settled as the clock closed)."""


@dataclass
class Truth:
    now: datetime
    stored: dict[str, dict[str, str]] = field(default_factory=dict)
    """``inquiry`` / ``activity`` / ``outcome`` → stored id → its lead."""
    per_lead: dict[str, Counter[str]] = field(default_factory=dict)
    """``inquiry`` / ``activity`` / ``outcome`` → lead → rows stored."""
    inputs: Counter[str] = field(default_factory=Counter)
    """Lead → its inputs (lead.received, lead.activity, lead.outcome in its history)."""
    scored: Counter[str] = field(default_factory=Counter)
    """Lead → its lead.scored entries."""
    outbox: list[OutboxRow] = field(default_factory=list)
    processed: dict[str, set[str]] = field(default_factory=dict)
    """Consumer → the event ids it recorded as processed."""
    webhooks: Counter[str] = field(default_factory=Counter)
    """Webhook messages by status."""
    webhook_problems: list[str] = field(default_factory=list)
    routing_waiting: int = 0
    reps: list[asyncpg.Record] = field(default_factory=list)
    clocks: list[Clock] = field(default_factory=list)
    facts: set[str] = field(default_factory=set)
    lines: dict[str, asyncpg.Record] = field(default_factory=dict)
    outcomes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Lead → the outcomes stored for it."""

    def events(self, *types: str) -> list[OutboxRow]:
        return [row for row in self.outbox if row.type in types]

    def deliverable(self, topics: set[str]) -> list[OutboxRow]:
        """The events the CRM's subscription must receive: on the topics the webhook service
        consumes, of the types it subscribed to."""
        return [r for r in self.outbox if r.topic in topics and receives(EVENT_TYPES, r.type)]

    def unconsumed(self) -> dict[str, int]:
        """Consumer → how many outbox events of its topics it has not processed."""
        return {consumer: len(rows) for consumer, rows in self.unconsumed_rows().items()}

    def unconsumed_rows(self) -> dict[str, list[OutboxRow]]:
        """Consumer → outbox events of its topics, of the types it acts on (``HANDLED``), that
        it has not processed (its topics: those of the events it processed)."""
        topics_of = {row.id: row.topic for row in self.outbox}
        missing = {}
        for consumer, done in self.processed.items():
            topics = {topics_of[e] for e in done if e in topics_of}
            acts_on = HANDLED.get(consumer)
            missing[consumer] = [
                row
                for row in self.outbox
                if row.topic in topics
                and row.id not in done
                and (acts_on is None or row.type in acts_on)
            ]
        return missing


async def read_truth(dsn: str) -> Truth:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            return await _read(connection)
    finally:
        await connection.close()


async def _read(c: asyncpg.Connection) -> Truth:
    truth = Truth(now=await c.fetchval("SELECT now()"))
    for name, sql in (
        ("inquiry", "SELECT id::text AS id, lead_id::text AS lead FROM inquiries"),
        ("activity", "SELECT id::text AS id, lead_id::text AS lead FROM lead_activities"),
        ("outcome", OUTCOMES_SQL),
    ):
        rows = await c.fetch(sql)
        truth.stored[name] = {r["id"]: r["lead"] for r in rows}
        truth.per_lead[name] = Counter(r["lead"] for r in rows)
        if name == "outcome":
            for r in rows:
                truth.outcomes[r["lead"]].add(r["outcome"])
    history = await c.fetch(
        "SELECT lead_id::text AS lead, kind FROM lead_history WHERE kind = ANY($1::text[])",
        [*INPUTS, "lead.scored"],
    )
    for r in history:
        (truth.scored if r["kind"] == "lead.scored" else truth.inputs)[r["lead"]] += 1
    truth.outbox = [OutboxRow(**dict(r)) for r in await c.fetch(OUTBOX_SQL)]
    for r in await c.fetch("SELECT consumer, event_id FROM processed_events"):
        truth.processed.setdefault(r["consumer"], set()).add(r["event_id"])
    for r in await c.fetch(
        "SELECT status, event_type, last_status, last_error FROM webhook_messages"
        " WHERE status <> 'delivered'"
    ):
        truth.webhooks[r["status"]] += 1
        if r["status"] != "pending":
            truth.webhook_problems.append(
                f"{r['status']} {r['event_type']}: {r['last_status']} {r['last_error']}"
            )
    truth.routing_waiting = await c.fetchval(
        "SELECT count(*) FROM leads WHERE routing_status IN ('pending', 'failed')"
    )
    truth.reps = list(await c.fetch(REPS_SQL))
    truth.clocks = [_clock(r) for r in await c.fetch(CLOCKS_SQL)]
    facts = await c.fetch("SELECT event_id::text AS id FROM analytics_facts")
    truth.facts = {r["id"] for r in facts}
    truth.lines = {r["lead"]: r for r in await c.fetch(LINES_SQL)}
    return truth


def _clock(row: asyncpg.Record) -> Clock:
    tiers = row["tiers"]
    tiers = orjson.loads(tiers) if isinstance(tiers, str | bytes) else tiers  # jsonb: text
    dues = tuple(datetime.fromisoformat(t["due"]) for t in tiers)
    passed = frozenset(int(t["index"]) for t in tiers if t.get("passed_over"))
    return Clock(
        row["id"], row["lead"], row["kind"], row["state"], dues, row["next_due_at"],
        row["closed_at"], passed,
    )  # fmt: skip
