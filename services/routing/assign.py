"""Routing inside the caller's transaction: decide, record the why, stage the event.

The scoring process's router calls ``route_leads`` for the leads scoring qualified, right after
scoring's commit (services/routing/pending.py); ``reassign_lead`` serves the API, SLA escalations
and rejections by the owner; ``release_leads`` runs in scoring's transaction. None commits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing import txn as routing_txn
from services.routing.directory import Directory
from services.routing.facts import routing_facts
from services.routing.models import Assignment, Rep
from services.routing.record import record, write
from services.routing.router import Decision, Situation, Target, route, target
from services.routing.txn import RoutingTxn
from shared.config import Settings
from shared.models import Inquiry, Lead, LeadHistory, table_of

leads_t, inquiries_t, history_t = table_of(Lead), table_of(Inquiry), table_of(LeadHistory)
assignments_t, reps_t = table_of(Assignment), table_of(Rep)
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
        rows = await session.execute(query.where(leads_t.c.id.in_(sorted(set(lead_ids)))))
        owners = {row.id: row for row in rows}
        return [_unchanged(_found(owners, lead_id)) for lead_id in lead_ids]
    # Lead rows first, then the routing lock: the order scoring takes them in (see txn.py).
    found = await _leads(session, lead_ids)
    txn = await routing_txn.begin(session)
    directory = await store.directory(session, txn.token)
    # "pending": qualified by scoring (pending.py); "closed": released when it was recycled, and
    # now qualified again: route it anew.
    wanted = ("queued",) if trigger == "queue" else (None, "closed", "pending")
    # Routed already; a platform's test lead (never counted); or routing is off until a team
    # exists (the CRM may route): nothing to do.
    to_route = {
        lead_id: _Plan(lead, submissions, directory)
        for lead_id in lead_ids
        for lead, submissions in [_found(found, lead_id)]
        if lead.routing_status in wanted and not lead.is_test and directory.teams
    }
    await routing_txn.load(session, txn, [p.target[1] for p in to_route.values() if p.target[1]])
    results, events, updates = [], [], []
    twice = {lead_id for lead_id, n in Counter(lead_ids).items() if n > 1}
    for lead_id in lead_ids:
        lead, submissions = found[lead_id]
        if lead_id not in to_route or lead.routing_status not in wanted:
            results.append(_unchanged(lead))
            continue
        plan = to_route[lead_id]
        decision = await _decide(
            session, txn, directory, lead, submissions, now=now, facts=plan.facts, to=plan.target
        )
        if trigger == "queue" and decision.outcome == "queued":
            results.append(_unchanged(lead))
            continue
        if lead_id in twice:  # the second time sees it routed
            found[lead_id] = (_Routed(lead, decision), submissions)
        event, values, candidates = record(txn, directory, lead, decision, now=now, trigger=trigger)
        events.append(event)
        updates.append(values)
        results.append(_result(lead_id, decision, event.type, candidates))
    await write(session, settings, updates, events)
    await routing_txn.write_rows(session, txn)
    return results


async def reassign_lead(
    session: AsyncSession,
    lead_id: UUID,
    *,
    now: datetime,
    settings: Settings,
    trigger: str,
    why: str,
    expected_owner: UUID | None = None,
    to: UUID | None = None,
) -> RoutingDecision:
    """Move the lead to someone else: ``to``, or by routing again with everyone who has held
    the lead excluded (no ping-pong); after ``reassignment.max_per_lead`` moves it waits in the
    default queue for a manager. ``expected_owner``: act only if the lead still has that owner,
    so a stale escalation, or a rejection by a former owner, changes nothing."""
    # Lead row first, then the routing lock: the order scoring takes them in (see txn.py).
    lead, submissions = await _lead(session, lead_id)
    if lead.quarantined:
        raise LeadQuarantined(f"lead {lead_id} is quarantined")
    txn = await routing_txn.begin(session)
    if expected_owner is not None and lead.owner_id != expected_owner:
        return _unchanged(lead)
    if trigger != "requested" and lead.stage in CLOSED_STAGES:
        return _unchanged(lead)  # won, lost, recycled, disqualified: nobody's to work any more
    directory = await store.directory(session, txn.token)
    await routing_txn.write_rows(session, txn)
    if to is not None:
        decision = _directed(directory, lead, to)
    else:
        held = await _previous_owners(session, lead_id)
        exclude = frozenset({*held, *([lead.owner_id] if lead.owner_id else [])})
        count = await _reassignments(session, lead_id) + 1
        decision = await _decide(
            session, txn, directory, lead, submissions, now=now, exclude=exclude, count=count
        )
    if lead.owner_id is not None:
        txn.release(lead.owner_id)
    event, values, candidates = record(
        txn, directory, lead, decision, now=now, trigger=trigger, previous=lead, why=why
    )
    await write(session, settings, [values], [event])
    return _result(lead_id, decision, event.type, candidates)


async def release_lead(session: AsyncSession, lead_id: UUID) -> None:
    """The lead is closed (won, lost, disqualified): it no longer counts against its owner."""
    await _lead(session, lead_id)
    await release_leads(session, [lead_id])


async def release_leads(session: AsyncSession, lead_ids: Sequence[UUID]) -> None:
    """Closed leads no longer count against their owners: one read, two updates, and not the
    routing lock: scoring's transactions release while the router routes. The counts go down
    as deltas, reps in id order (as the router's writes, txn.py: no two transactions take two
    reps' rows in opposite orders); a router that read a count just before sees it one too
    high, which can delay a lead but never exceed a cap. The caller holds the lead rows' locks."""
    query = select(leads_t.c.id, leads_t.c.owner_id).where(
        leads_t.c.id.in_(sorted(set(lead_ids))),
        leads_t.c.routing_status == "routed",
        leads_t.c.owner_id.is_not(None),
    )
    owned = (await session.execute(query)).all() if lead_ids else []
    if not owned:
        return
    released = Counter(owner for _, owner in owned)
    await session.execute(
        update(reps_t)
        .where(reps_t.c.id == bindparam("b_id"))
        .values(open_leads=reps_t.c.open_leads - bindparam("b_count")),
        [{"b_id": rep, "b_count": count} for rep, count in sorted(released.items())],
    )
    closed = update(leads_t).where(leads_t.c.id.in_([lead_id for lead_id, _ in owned]))
    await session.execute(closed.values(routing_status="closed"))


async def _decide(
    session: AsyncSession,
    txn: RoutingTxn,
    directory: Directory,
    lead: Any,
    submissions: list[dict[str, Any]],
    *,
    now: datetime,
    exclude: frozenset[UUID] = frozenset(),
    count: int = 0,
    facts: dict[str, Any] | None = None,
    to: Target | None = None,
) -> Decision:
    """``facts`` and ``to``: the lead's facts and target when already worked out."""
    facts = facts if facts is not None else routing_facts(lead, submissions)
    matched = to or target(directory, facts)
    team = matched[1]
    loads, ledger = await routing_txn.loads_and_ledger(session, txn, team)
    situation = Situation(
        facts=facts,
        now=now,
        loads=loads,
        ledgers={team.id: ledger} if team is not None and ledger is not None else {},
        exclude=exclude,
        reassignments=count,
        target=matched,
    )
    return route(directory, situation)


def _directed(directory: Directory, lead: Any, to: UUID) -> Decision:
    rep = directory.reps[to]
    return Decision(
        "routed",
        "requested",
        f"given to {rep.name} on request",
        rep.id,
        is_expansion=bool(lead.is_expansion),
        account_id=lead.account_id,
    )


async def _lead(session: AsyncSession, lead_id: UUID) -> tuple[Any, list[dict[str, Any]]]:
    return _found(await _leads(session, [lead_id]), lead_id)


def _found(found: dict[UUID, Any], lead_id: UUID) -> Any:
    if lead_id not in found:
        raise LeadNotFound(f"no lead {lead_id}")
    return found[lead_id]


async def _leads(
    session: AsyncSession, lead_ids: Sequence[UUID]
) -> dict[UUID, tuple[Any, list[dict[str, Any]]]]:
    """The leads, row-locked in id order (scoring holds those locks already on its path), each
    with its submissions, oldest first."""
    query = (
        select(leads_t, inquiries_t.c.submission)
        .outerjoin(inquiries_t, inquiries_t.c.lead_id == leads_t.c.id)
        .where(leads_t.c.id.in_(sorted(set(lead_ids))))
        .order_by(leads_t.c.id, inquiries_t.c.received_at)
        .with_for_update(of=leads_t)
    )
    found: dict[UUID, tuple[Any, list[dict[str, Any]]]] = {}
    for row in await session.execute(query):
        lead, submissions = found.setdefault(row.id, (row, []))
        if row.submission is not None:
            submissions.append(row.submission)
    return found


class _Plan:
    """A lead to route: its facts and the rule and team it goes to (worked out before the
    decisions, so that every team's loads and ledger are read at once)."""

    def __init__(self, lead: Any, submissions: list[dict[str, Any]], directory: Directory) -> None:
        self.facts = routing_facts(lead, submissions)
        self.target = target(directory, self.facts)


class _Routed:
    """A lead row as it is after routing earlier in the same call."""

    def __init__(self, lead: Any, decision: Decision) -> None:
        self.__dict__.update(lead._mapping)
        self.routing_status = decision.outcome
        self.owner_id = decision.owner_id


async def _previous_owners(session: AsyncSession, lead_id: UUID) -> set[UUID]:
    query = select(assignments_t.c.owner_id).where(
        assignments_t.c.lead_id == lead_id, assignments_t.c.owner_id.is_not(None)
    )
    return set(await session.scalars(query))


async def _reassignments(session: AsyncSession, lead_id: UUID) -> int:
    query = select(func.count()).where(
        assignments_t.c.lead_id == lead_id, assignments_t.c.previous_owner_id.is_not(None)
    )
    return int(await session.scalar(query) or 0)


def _unchanged(lead: Any) -> RoutingDecision:
    return RoutingDecision(
        lead.id, "unchanged", lead.owner_id, None, "", "nothing to do", bool(lead.is_expansion)
    )


def _result(
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
