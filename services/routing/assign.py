"""Routing inside the caller's transaction: plan, lock, decide, record the why, stage the event.

The scoring process's router calls ``route_leads`` for the leads scoring qualified, right after
scoring's commit (services/routing/pending.py); reassignments (services/routing/reassign.py)
serve the API, SLA escalations and rejections by the owner. None commits. Each plans every lead
first (facts, rules, account search: no lock held), then takes the locks the decisions need in
one step (services/routing/txn.py), then decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing import txn as routing_txn
from services.routing.directory import Directory
from services.routing.facts import routing_facts
from services.routing.record import record, write
from services.routing.router import Decision, Needs, Situation, match_account, needs, route, target
from services.routing.txn import RoutingTxn
from shared.config import Settings
from shared.db import among
from shared.models import Inquiry, Lead, LeadHistory, table_of

leads_t, inquiries_t, history_t = table_of(Lead), table_of(Inquiry), table_of(LeadHistory)
CLOSED_STAGES = frozenset({"won", "lost", "recycled", "disqualified"})
"""A lead in one of these no longer counts against its owner and is not reassigned on its own."""


class LeadNotFound(LookupError):
    pass


class LeadQuarantined(LeadNotFound):
    """The lead is a quarantined inquiry's placeholder: nobody routes it until it is released
    (and a discard deletes it, which rows of routing's would hold up)."""


@dataclass(frozen=True)
class RoutingDecision:
    lead_id: UUID
    outcome: str
    """routed, queued, or unchanged (nothing done: already routed, or a stale request)"""
    owner_id: UUID | None
    team: str | None
    rule: str
    reason: str
    is_expansion: bool
    candidates: tuple[dict[str, Any], ...] = ()
    event_type: str | None = None


async def route_lead(
    session: AsyncSession,
    lead_id: UUID,
    *,
    now: datetime,
    settings: Settings,
    trigger: str = "qualified",
) -> RoutingDecision:
    """Give a newly qualified lead an owner, or a queue to wait in (see ``route_leads``)."""
    [decision] = await route_leads(session, [lead_id], now=now, settings=settings, trigger=trigger)
    return decision


async def route_leads(
    session: AsyncSession,
    lead_ids: Sequence[UUID],
    *,
    now: datetime,
    settings: Settings,
    trigger: str = "qualified",
    routing_on: bool = False,
) -> list[RoutingDecision]:
    """Route several leads in one go (scoring's batch): one read, one update, one outbox write.

    Idempotent: a lead already routed or queued is left alone. ``trigger="queue"`` retries a
    queued lead (the queue sweep) and changes nothing while nobody is eligible yet.
    ``routing_on``: the caller has just read, in this transaction, that routing is on.
    """
    if not routing_on and await store.routing_off(session):  # no lock, nor the submissions
        query = select(leads_t.c.id, leads_t.c.owner_id, leads_t.c.is_expansion)
        rows = await session.execute(
            query.where(among(session, leads_t.c.id, sorted(set(lead_ids))))
        )
        owners = {row.id: row for row in rows}
        return [unchanged(found(owners, lead_id)) for lead_id in lead_ids]
    # Lead rows first, then the routing locks: the order scoring takes them in (see txn.py).
    leads = await locked_leads(session, lead_ids)
    txn = await routing_txn.begin(session)
    directory = await store.directory(session, txn.token)
    # "pending": qualified by scoring (pending.py); "closed": released when it was recycled, and
    # now qualified again: route it anew.
    wanted = ("queued",) if trigger == "queue" else (None, "closed", "pending")
    # Routed already; a platform's test lead (never counted); or routing is off until a team
    # exists (the CRM may route): nothing to do.
    plans = {
        lead_id: plan(directory, lead, submissions, now=now)
        for lead_id in lead_ids
        for lead, submissions in [found(leads, lead_id)]
        if lead.routing_status in wanted and not lead.is_test and directory.teams
    }
    # Every lead planned, then every lock of the round in one step (pools, then reps).
    await routing_txn.take(session, txn, [p.needs for p in plans.values()])
    results, events, updates = [], [], []
    twice = {lead_id for lead_id, n in Counter(lead_ids).items() if n > 1}
    for lead_id in lead_ids:
        lead, submissions = leads[lead_id]
        if lead_id not in plans or lead.routing_status not in wanted:
            results.append(unchanged(lead))
            continue
        decision = decide(txn, directory, plans[lead_id])
        if trigger == "queue" and decision.outcome == "queued":
            results.append(unchanged(lead))
            continue
        if lead_id in twice:  # the second time sees it routed
            leads[lead_id] = (_Routed(lead, decision), submissions)
        event, values, candidates = record(txn, directory, lead, decision, now=now, trigger=trigger)
        events.append(event)
        updates.append(values)
        results.append(result(lead_id, decision, event.type, candidates))
    await write(session, settings, updates, events)
    await routing_txn.write_rows(session, txn)
    return results


@dataclass(frozen=True)
class Plan:
    """A lead to route, worked out before any routing lock: its situation (loads and ledgers
    left out, read under the locks) and what the decision needs locked."""

    situation: Situation
    needs: Needs


def plan(
    directory: Directory,
    lead: Any,
    submissions: list[dict[str, Any]],
    *,
    now: datetime,
    exclude: frozenset[UUID] = frozenset(),
    count: int = 0,
) -> Plan:
    """The lead's facts, the rule and team it goes to, the customer account it is (the rules
    and the account search evaluated once, outside the locks), and what its decision needs."""
    facts = routing_facts(lead, submissions)
    situation = Situation(
        facts=facts,
        now=now,
        exclude=exclude,
        reassignments=count,
        target=target(directory, facts),
        account=match_account(directory, facts),
        matched=True,
    )
    return Plan(situation, needs(directory, situation))


def decide(txn: RoutingTxn, directory: Directory, planned: Plan) -> Decision:
    """The decision, from the loads and the ledger read under this transaction's locks."""
    team = planned.situation.target[1] if planned.situation.target else None
    ledger = txn.ledgers.get(team.id) if team is not None else None
    ledgers = {team.id: ledger} if team is not None and ledger is not None else {}
    return route(directory, replace(planned.situation, loads=txn.loads, ledgers=ledgers))


def found(leads: dict[UUID, Any], lead_id: UUID) -> Any:
    if lead_id not in leads:
        raise LeadNotFound(f"no lead {lead_id}")
    return leads[lead_id]


async def locked_leads(
    session: AsyncSession, lead_ids: Sequence[UUID]
) -> dict[UUID, tuple[Any, list[dict[str, Any]]]]:
    """The leads, row-locked in id order (scoring holds those locks already on its path), each
    with its submissions, oldest first."""
    query = (
        select(leads_t, inquiries_t.c.submission)
        .outerjoin(inquiries_t, inquiries_t.c.lead_id == leads_t.c.id)
        .where(among(session, leads_t.c.id, sorted(set(lead_ids))))
        .order_by(leads_t.c.id, inquiries_t.c.received_at)
        .with_for_update(of=leads_t)
    )
    leads: dict[UUID, tuple[Any, list[dict[str, Any]]]] = {}
    for row in await session.execute(query):
        _, submissions = leads.setdefault(row.id, (row, []))
        if row.submission is not None:
            submissions.append(row.submission)
    return leads


class _Routed:
    """A lead row as it is after routing earlier in the same call."""

    def __init__(self, lead: Any, decision: Decision) -> None:
        self.__dict__.update(lead._mapping)
        self.routing_status = decision.outcome
        self.owner_id = decision.owner_id


def unchanged(lead: Any) -> RoutingDecision:
    return RoutingDecision(
        lead.id, "unchanged", lead.owner_id, None, "", "nothing to do", bool(lead.is_expansion)
    )


def result(
    lead_id: UUID, decision: Decision, event_type: str, candidates: list[dict[str, Any]]
) -> RoutingDecision:
    return RoutingDecision(
        lead_id,
        decision.outcome,
        decision.owner_id,
        decision.team.name if decision.team else None,
        decision.rule,
        decision.reason,
        decision.is_expansion,
        tuple(candidates),
        event_type,
    )
