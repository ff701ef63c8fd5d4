"""Engagement and CRM outcomes posted back about a lead, found by id, email or CRM id (the
routes are in ``api``).

Each post stores a row, a history entry and its event (``lead.activity`` / ``lead.outcome``) in
one transaction, with the lead row locked so the lead's events keep their order. An outcome that
carries ``crm_id`` records it on the lead, so the CRM can address the lead by its own id after.

Retries: an ``Idempotency-Key`` header (scoped by the caller's key) and a body's ``external_id``
(scoped by the lead and the kind of report) are claimed in ``idempotency_records`` under the lead's
lock; a repeat gets the first answer (``Idempotent-Replayed: true``) and records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.engagement.schemas import (
    ActivityIn,
    ActivityStored,
    OutcomeIn,
    OutcomeStored,
    outcome_problems,
    when_problems,
)
from services.intake.idempotency import Key, fingerprint, first_answer, remember
from services.intake.models import LeadActivityRow, LeadOutcomeRow
from services.intake.settings import intake_config
from shared.events import LeadActivity, LeadActivityData, LeadOutcome, LeadOutcomeData
from shared.ids import new_id
from shared.models import Lead, LeadHistory
from shared.outbox import stage
from shared.problems import Problem
from shared.runtime import Runtime

SOURCE = "/leadflow/intake"


LeadRef = tuple[str, str]
"""How the caller names the lead: ("id" | "email" | "crm_id", value)."""
REPLAYED = "Idempotent-Replayed"
IDEMPOTENCY_KEY = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Retry:
    """What makes a post a retry of an earlier one: the caller's Idempotency-Key and the body's
    ``external_id``, either or both."""

    caller: str
    key: str | None = None
    external_id: str | None = None

    def keys(self, kind: str, lead_id: UUID) -> list[Key]:
        keys = []
        if self.key:
            keys.append(Key(f"engagement:{self.caller}:{self.key}", IDEMPOTENCY_KEY))
        if self.external_id:
            keys.append(Key(f"{kind}:{lead_id}:{self.external_id}", "external_id"))
        return keys


async def _replay(
    session: AsyncSession,
    runtime: Runtime,
    retry: Retry,
    lead: Lead,
    body: BaseModel,
    now: datetime,
) -> tuple[list[Key], dict[str, Any] | None]:
    """Claim the retry's keys (the lead is locked); the first answer if this is a repeat."""
    kind = "activity" if isinstance(body, ActivityIn) else "outcome"
    keys = retry.keys(kind, lead.id)
    request = {"kind": kind, "lead_id": str(lead.id), "body": body.model_dump(mode="json")}
    answer = await first_answer(
        session,
        keys,
        fingerprint(request),
        now=now,
        hours=intake_config(runtime.settings).intake.idempotency_hours,
    )
    return keys, answer


def normal_email(email: str) -> str:
    return email.strip().lower()


async def find_by_ref(session: AsyncSession, ref: LeadRef, *, lock: bool = True) -> Lead:
    """The lead (locked for the rest of the transaction), or a 404 naming how it was sought."""
    kind, value = ref
    if kind == "id":
        query = select(Lead).where(Lead.id == UUID(value))
    elif kind == "email":  # a quarantined inquiry's placeholder is not the person's lead
        query = select(Lead).where(Lead.email == normal_email(value), Lead.quarantined.is_(False))
    else:
        query = select(Lead).where(Lead.crm_id == value, Lead.quarantined.is_(False))
    lead = await session.scalar(query.with_for_update() if lock else query)
    field = {"id": "lead_id", "email": "email", "crm_id": "crm_id"}[kind]
    if lead is None:
        raise Problem(404, "Not Found", f"no lead with {field} {value}", field=field)
    if lead.quarantined:  # what it records would hold up a discard, and nobody works spam
        raise Problem(
            409,
            "Conflict",
            f"lead {value} is quarantined (held back as spam): release its inquiry first",
            field=field,
        )
    return lead


def _raise_first(found: list[tuple[str, str]]) -> None:
    if found:
        errors = [{"field": field, "detail": detail, "in": "body"} for field, detail in found]
        field, detail = found[0]
        raise Problem(422, "Invalid request", f"{field}: {detail}", field=field, errors=errors)


def _history(lead: Lead, kind: str, event_id: UUID, at: datetime, detail: dict) -> LeadHistory:
    return LeadHistory(
        id=new_id(), lead_id=lead.id, occurred_at=at, kind=kind, event_id=event_id, detail=detail
    )


async def record_activity(
    runtime: Runtime, ref: LeadRef, body: ActivityIn, now: datetime, retry: Retry
) -> ActivityStored:
    """The stored activity, or (a ``Replayed`` one) the first answer to the same retry keys."""
    _raise_first(when_problems(body.occurred_at, now))
    occurred = body.occurred_at or now
    async with runtime.sessions.begin() as session:
        lead = await find_by_ref(session, ref)
        keys, first = await _replay(session, runtime, retry, lead, body, now)
        if first is not None:
            return ReplayedActivity.model_validate(first)
        activity_id = new_id()
        event = LeadActivity.about_lead(
            lead.id,
            LeadActivityData(
                lead_id=lead.id,
                kind=body.type,
                occurred_at=occurred,
                detail=body.properties,
                activity_id=activity_id,
                is_test=lead.is_test,
            ),
            source=SOURCE,
            time=now,
        )
        session.add(
            LeadActivityRow(
                id=activity_id,
                lead_id=lead.id,
                kind=body.type,
                occurred_at=occurred,
                received_at=now,
                properties=body.properties,
                event_id=event.id,
            )
        )
        detail = {"activity_id": str(activity_id), "type": body.type}
        session.add(_history(lead, event.type, event.id, occurred, detail))
        await stage(session, intake_config(runtime.settings), event)
        stored = ActivityStored(activity_id=activity_id, lead_id=lead.id, event_id=event.id)
        await remember(session, keys, stored.model_dump(mode="json"))
    runtime.notify_relay()
    return stored


async def record_outcome(
    runtime: Runtime, ref: LeadRef, body: OutcomeIn, now: datetime, retry: Retry
) -> OutcomeStored:
    """The stored outcome, or (a ``Replayed`` one) the first answer to the same retry keys."""
    _raise_first(outcome_problems(body, now))
    occurred = body.occurred_at or now
    async with runtime.sessions.begin() as session:
        lead = await find_by_ref(session, ref)
        keys, first = await _replay(session, runtime, retry, lead, body, now)
        if first is not None:
            return ReplayedOutcome.model_validate(first)
        if body.crm_id and body.crm_id != lead.crm_id:
            await _take_crm_id(session, lead, body.crm_id)
        outcome_id = new_id()
        event = LeadOutcome.about_lead(
            lead.id,
            LeadOutcomeData(
                lead_id=lead.id,
                outcome=body.outcome,
                occurred_at=occurred,
                reason=body.reason,
                amount=float(body.amount) if body.amount is not None else None,
                currency=body.currency,
                crm=body.crm,
                crm_id=lead.crm_id,
                outcome_id=outcome_id,
                is_test=lead.is_test,
            ),
            source=SOURCE,
            time=now,
        )
        session.add(_outcome_row(outcome_id, lead, body, occurred, now, event.id))
        detail = {"outcome_id": str(outcome_id), "outcome": body.outcome, "reason": body.reason}
        session.add(_history(lead, event.type, event.id, occurred, detail))
        await stage(session, intake_config(runtime.settings), event)
        stored = OutcomeStored(outcome_id=outcome_id, lead_id=lead.id, event_id=event.id)
        await remember(session, keys, stored.model_dump(mode="json"))
    runtime.notify_relay()
    return stored


async def _take_crm_id(session: AsyncSession, lead: Lead, crm_id: str) -> None:
    """Record the CRM's id on the lead (the latest wins: CRMs re-key converted leads)."""
    holder = await session.scalar(select(Lead.id).where(Lead.crm_id == crm_id))
    if holder is not None and holder != lead.id:
        raise Problem(409, "Conflict", f"crm_id {crm_id} belongs to lead {holder}", field="crm_id")
    lead.crm_id = crm_id
    await session.flush()


def _outcome_row(
    outcome_id: UUID, lead: Lead, body: OutcomeIn, occurred: datetime, now: datetime, event: UUID
) -> LeadOutcomeRow:
    return LeadOutcomeRow(
        id=outcome_id,
        lead_id=lead.id,
        outcome=body.outcome,
        occurred_at=occurred,
        received_at=now,
        reason=body.reason,
        amount=body.amount,
        currency=body.currency,
        crm=body.crm,
        crm_id=body.crm_id,
        properties=body.properties,
        event_id=event,
    )


class ReplayedActivity(ActivityStored):
    """The first answer to a retried activity, given again."""


class ReplayedOutcome(OutcomeStored):
    """The first answer to a retried outcome, given again."""
