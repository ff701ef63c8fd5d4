"""What a routing decision leaves behind, in the caller's transaction: the lead's new owner and
status, the assignment with its candidates and reasons, a history row, and the event
(``lead.routed`` or ``lead.queued``); ``record`` notes them in the routing transaction's state,
``write`` writes the leads and stages the events of a round."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.directory import Directory
from services.routing.emit import RoutingEvent, routing_event
from services.routing.models import Assignment
from services.routing.router import Decision
from services.routing.txn import RoutingTxn
from shared.config import Settings
from shared.db import driver_connection, translated
from shared.ids import new_id
from shared.models import Lead, LeadHistory, table_of
from shared.outbox import stage

leads_t, history_t, assignments_t = table_of(Lead), table_of(LeadHistory), table_of(Assignment)


def record(
    txn: RoutingTxn,
    directory: Directory,
    lead: Any,
    decision: Decision,
    *,
    now: datetime,
    trigger: str,
    previous: Any = None,
    why: str = "",
) -> tuple[RoutingEvent, dict[str, Any], list[dict[str, Any]]]:
    """Note the decision in the transaction's state; return its event, the lead's new values and
    the candidates as stored."""
    owner = directory.reps.get(decision.owner_id) if decision.owner_id else None
    team = decision.team
    txn.now = now
    if owner is not None:
        txn.assign(owner.id, owner.hours.local_day(now))
    if decision.ledger is not None and team is not None:
        txn.ledgers[team.id] = decision.ledger
    status = "routed" if owner is not None else "queued"
    values = {
        "b_id": lead.id,
        "owner_id": decision.owner_id,
        "owner_team_id": team.id if team else None,
        "routing_status": status,
        "routed_at": now if owner is not None else None,
        "is_expansion": decision.is_expansion,
        "account_id": decision.account_id,
        "updated_at": now,
    }
    reason = (f"{why}: " if why else "") + decision.reason
    candidates = [c.as_dict() for c in decision.candidates]
    event = routing_event(
        directory, lead, decision, trigger=trigger, previous=previous, why=why, now=now
    )
    txn.add(
        assignments_t,
        {
            "id": new_id(),
            "lead_id": lead.id,
            "decided_at": now,
            "trigger": trigger,
            "outcome": status,
            "owner_id": decision.owner_id,
            "team_id": team.id if team else None,
            "previous_owner_id": previous.owner_id if previous is not None else None,
            "rule": decision.rule,
            "ruleset_version": directory.ruleset_version,
            "strategy": decision.strategy,
            "is_expansion": decision.is_expansion,
            "account_id": decision.account_id,
            "reason": reason[:500],
            "available_at": decision.available_at,
            "candidates": candidates,
        },
    )
    txn.add(
        history_t,
        {
            "id": new_id(),
            "lead_id": lead.id,
            "occurred_at": now,
            "kind": event.type,
            "event_id": event.id,
            "detail": {
                "owner": owner.email if owner else None,
                "team": team.name if team else None,
                "rule": decision.rule,
                "reason": reason[:500],
            },
        },
    )
    return event, values, candidates


async def write(
    session: AsyncSession,
    settings: Settings,
    updates: list[dict[str, Any]],
    events: list[RoutingEvent],
) -> None:
    if updates and session.get_bind().dialect.name == "postgresql":
        # One Bind for the round, arrays as parameters (as scoring's store.save).
        driver = await driver_connection(session)
        with translated(ROUTED):
            await driver.execute(ROUTED, *([u[c] for u in updates] for c in ROUTED_COLUMNS))
    elif updates:
        columns: dict[str, BindParameter[Any]] = {
            k: bindparam(k) for k in updates[0] if k != "b_id"
        }
        statement = update(leads_t).where(leads_t.c.id == bindparam("b_id")).values(**columns)
        await session.execute(statement, updates)
    await stage(session, settings, *events)


ROUTED_COLUMNS = {
    "b_id": "uuid",
    "owner_id": "uuid",
    "owner_team_id": "uuid",
    "routing_status": "text",
    "routed_at": "timestamptz",
    "is_expansion": "bool",
    "account_id": "uuid",
    "updated_at": "timestamptz",
}
"""The lead's values ``record`` returns, with their PostgreSQL types."""
ROUTED = (
    "UPDATE leads AS l SET "
    + ", ".join(f"{c} = v.{c}" for c in list(ROUTED_COLUMNS)[1:])
    + " FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, t in enumerate(ROUTED_COLUMNS.values(), start=1))
    + f") AS v(id, {', '.join(list(ROUTED_COLUMNS)[1:])}) WHERE l.id = v.id"
)
