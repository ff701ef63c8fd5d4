"""Moving a lead to someone else — on request (the API, a CRM's owner change, the CLI), on an SLA
escalation, on a rejection by the wrong owner — and releasing closed leads from their owners. In
the caller's transaction; none commits.

A batch of reassignments plans every lead first, then takes every routing lock it needs in one
step (services/routing/txn.py): the pools and reps its decisions may read or change, each lead's
current owner (released from it), and the owners of the closed leads released with it (scoring's
batch), so that no lock is taken after another out of order.
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
from services.routing.assign import (
    CLOSED_STAGES,
    LeadNotFound,
    LeadQuarantined,
    Plan,
    RoutingDecision,
    decide,
    found,
    locked_leads,
    plan,
    result,
    unchanged,
)
from services.routing.directory import Directory
from services.routing.models import Assignment, Rep
from services.routing.record import record, write
from services.routing.router import Decision, Needs
from services.routing.txn import RoutingTxn
from shared.config import Settings
from shared.db import among
from shared.models import Lead, table_of

leads_t, assignments_t, reps_t = table_of(Lead), table_of(Assignment), table_of(Rep)


@dataclass(frozen=True)
class Reassignment:
    lead_id: UUID
    trigger: str
    why: str
    expected_owner: UUID | None = None
    """Act only if the lead still has that owner: a stale escalation, or a rejection by a
    former owner, changes nothing."""
    to: UUID | None = None
    """Give it to this rep; None: route it again with everyone who has held it excluded."""


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
    default queue for a manager. ``expected_owner``: see ``Reassignment``."""
    request = Reassignment(lead_id, trigger, why, expected_owner, to)
    [decision] = await reassign_leads(session, [request], now=now, settings=settings)
    return decision


async def reassign_leads(
    session: AsyncSession,
    requests: Sequence[Reassignment],
    *,
    now: datetime,
    settings: Settings,
    release: Sequence[UUID] = (),
    skip_missing: bool = False,
) -> list[RoutingDecision]:
    """Each request in turn (see ``reassign_lead``), then ``release``: closed leads released
    from their owners, with the same step of locks. ``skip_missing``: a lead that does not
    exist, or is quarantined, has no decision in the answer rather than raising."""
    if not requests:
        await release_leads(session, release)
        return []
    # Lead rows first, then the routing locks: the order scoring takes them in (see txn.py).
    leads = await locked_leads(session, [request.lead_id for request in requests])
    txn = await routing_txn.begin(session)
    directory = await store.directory(session, txn.token)
    moves = []
    for request in requests:
        try:
            lead = _lead(leads, request.lead_id)
        except LeadNotFound:
            if skip_missing:
                continue
            raise
        moves.append(await _plan(session, txn, directory, request, lead, now=now))
    owners = frozenset(owner for _, owner in await _owned(session, release))
    await routing_txn.take(session, txn, [*(m.needs for m in moves), Needs(reps=owners)])
    decisions, done = [], set()
    for move in moves:
        lead_id = move.request.lead_id
        if lead_id in done:  # moved earlier in this batch: planned again from where it is now
            lead = _lead(await locked_leads(session, [lead_id]), lead_id)
            move = await _plan(session, txn, directory, move.request, lead, now=now)
            await routing_txn.take(session, txn, [move.needs])
        done.add(lead_id)
        decisions.append(await _move(session, settings, txn, directory, move, now=now))
    await release_leads(session, release)
    return decisions


@dataclass(frozen=True)
class _Move:
    request: Reassignment
    lead: Any
    needs: Needs = Needs()
    directed: Decision | None = None
    plan: Plan | None = None
    """Neither ``directed`` nor ``plan``: nothing to do (a stale request, a closed lead)."""


async def _plan(
    session: AsyncSession,
    txn: RoutingTxn,
    directory: Directory,
    request: Reassignment,
    found_lead: tuple[Any, list[dict[str, Any]]],
    *,
    now: datetime,
) -> _Move:
    lead, submissions = found_lead
    if request.expected_owner is not None and lead.owner_id != request.expected_owner:
        return _Move(request, lead)
    if request.trigger != "requested" and lead.stage in CLOSED_STAGES:
        return _Move(request, lead)  # won, lost, recycled, disqualified: nobody's to work any more
    owner = frozenset({lead.owner_id}) if lead.owner_id is not None else frozenset()
    if request.to is not None:
        decision = directed(directory, lead, request.to)
        return _Move(request, lead, Needs(reps=owner | {request.to}), directed=decision)
    await routing_txn.write_rows(session, txn)  # this transaction's decisions, to read them back
    exclude = frozenset({*await _previous_owners(session, lead.id), *owner})
    count = await _reassignments(session, lead.id) + 1
    planned = plan(directory, lead, submissions, now=now, exclude=exclude, count=count)
    needs = Needs(planned.needs.pools, planned.needs.reps | owner)
    return _Move(request, lead, needs, plan=planned)


async def _move(
    session: AsyncSession,
    settings: Settings,
    txn: RoutingTxn,
    directory: Directory,
    move: _Move,
    *,
    now: datetime,
) -> RoutingDecision:
    lead, request = move.lead, move.request
    if move.directed is not None:
        decision = move.directed
    elif move.plan is not None:
        decision = decide(txn, directory, move.plan)
    else:
        return unchanged(lead)
    if lead.owner_id is not None:
        txn.release(lead.owner_id)
    event, values, candidates = record(
        txn, directory, lead, decision, now=now, trigger=request.trigger, previous=lead,
        why=request.why,
    )  # fmt: skip
    await write(session, settings, [values], [event])
    return result(lead.id, decision, event.type, candidates)


def directed(directory: Directory, lead: Any, to: UUID) -> Decision:
    rep = directory.reps[to]
    return Decision(
        "routed",
        "requested",
        f"given to {rep.name} on request",
        rep.id,
        is_expansion=bool(lead.is_expansion),
        account_id=lead.account_id,
    )


def _lead(
    leads: dict[UUID, tuple[Any, list[dict[str, Any]]]], lead_id: UUID
) -> tuple[Any, list[dict[str, Any]]]:
    lead = found(leads, lead_id)
    if lead[0].quarantined:
        raise LeadQuarantined(f"lead {lead_id} is quarantined")
    return lead


async def release_lead(session: AsyncSession, lead_id: UUID) -> None:
    """The lead is closed (won, lost, disqualified): it no longer counts against its owner."""
    found(await locked_leads(session, [lead_id]), lead_id)
    await release_leads(session, [lead_id])


async def release_leads(session: AsyncSession, lead_ids: Sequence[UUID]) -> None:
    """Closed leads no longer count against their owners: one read, two updates. The counts go
    down as deltas, reps in id order, each rep's row taken (routers lock the same rows in the
    same order, txn.py; in a transaction that routed, ``reassign_leads`` has locked them with
    its decisions' locks). A count read just before is one too high, which can delay a lead but
    never exceed a cap. The caller holds the lead rows' locks."""
    owned = await _owned(session, lead_ids)
    if not owned:
        return
    released = Counter(owner for _, owner in owned)
    await session.execute(
        update(reps_t)
        .where(reps_t.c.id == bindparam("b_id"))
        .values(open_leads=reps_t.c.open_leads - bindparam("b_count")),
        [{"b_id": rep, "b_count": count} for rep, count in sorted(released.items())],
    )
    closed = update(leads_t).where(among(session, leads_t.c.id, [lead_id for lead_id, _ in owned]))
    await session.execute(closed.values(routing_status="closed"))


async def _owned(session: AsyncSession, lead_ids: Sequence[UUID]) -> list[tuple[UUID, UUID]]:
    """The routed leads among these, with their owners."""
    if not lead_ids:
        return []
    query = select(leads_t.c.id, leads_t.c.owner_id).where(
        among(session, leads_t.c.id, sorted(set(lead_ids))),
        leads_t.c.routing_status == "routed",
        leads_t.c.owner_id.is_not(None),
    )
    return [(lead_id, owner) for lead_id, owner in await session.execute(query)]


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
