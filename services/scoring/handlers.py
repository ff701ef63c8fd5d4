"""Scoring's event handler: a batch of events in, leads re-scored and moved, events staged.

Everything happens in the caller's transaction (the consumer's batch): lock the leads, record
activities, judge each lead with the active ruleset, move it through the lifecycle, write its
state, history and transitions, and stage ``lead.scored`` plus any stage event in the outbox;
then the ``after_scoring`` hooks run, in the same transaction (the composition root plugs
routing in: services/processes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import lifecycle, store
from services.scoring.facts import facts_of
from services.scoring.lifecycle import Transition, TransitionRefused
from services.scoring.rules import Decision, qualify
from shared.config import Settings
from shared.events import (
    STAGE_EVENTS,
    CloudEvent,
    Event,
    LeadActivity,
    LeadOutcome,
    LeadReceived,
    LeadScored,
    LeadScoredData,
    StageChangedData,
)
from shared.ids import new_id
from shared.outbox import stage

SOURCE = "/leadflow/scoring"
HANDLED = (LeadReceived, LeadActivity, LeadOutcome)


class LeadMissing(LookupError):
    """The event names a lead the database does not hold."""


class AfterScoring(Protocol):
    """Another service's work on a scored batch, in scoring's transaction, after its events are
    staged so that what it stages follows them (routing: ``lead.routed`` after ``lead.mql``)."""

    async def __call__(
        self,
        session: AsyncSession,
        events: Sequence[CloudEvent],
        moves: Sequence[dict[str, Any]],
        *,
        settings: Settings,
        now: datetime,
    ) -> object: ...


class ScoringHandler:
    handles = HANDLED

    def __init__(
        self,
        settings: Settings,
        rulesets: store.RulesetCache | None = None,
        *,
        after_scoring: Sequence[AfterScoring] = (),
    ) -> None:
        self.settings = settings
        self.rulesets = rulesets or store.RulesetCache()
        self.after_scoring = tuple(after_scoring)

    async def __call__(self, event: Event, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[Event], *, session: AsyncSession, now: datetime
    ) -> None:
        relevant = [e for e in events if isinstance(e, HANDLED)]
        if not relevant:
            return
        label, ruleset = await self.rulesets.active(session)
        ids = {e.data.lead_id for e in relevant}
        states = await store.lock_leads(session, list(ids))
        if missing := ids - states.keys():
            raise LeadMissing(f"lead {sorted(missing)[0]} not found")
        await store.add_activities(session, [r for e in relevant if (r := _activity_row(e))])
        batch = _Batch(label, now)
        activities = await store.activities_of(session, ids)
        submissions = await store.submissions_of(session, ids)
        for event in relevant:
            lead = states[event.data.lead_id]
            batch.cause_at = _happened(event)
            if isinstance(event, LeadOutcome):
                batch.outcome(lead, event)
            facts = facts_of(_Row(lead), submissions.get(lead["id"], ()))
            done = activities.get(lead["id"], ())
            decision = qualify(facts, done, ruleset, now=now)
            recycled_at = lead["recycled_at"]
            engaged = recycled_at is None or any(a.occurred_at > recycled_at for a in done)
            batch.scored(lead, decision, engaged_since_recycled=engaged)
        await store.save(session, [states[i] for i in batch.touched], batch.history, batch.moves)
        await stage(session, self.settings, *batch.events)
        for hook in self.after_scoring:
            await hook(session, relevant, batch.moves, settings=self.settings, now=now)


class _Row:
    """Attribute access over a lead's state dict, for ``facts_of``."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _happened(event: CloudEvent) -> datetime:
    """When what an event reports happened: an outcome's or an activity's own time, else the
    event's (an inquiry's arrival)."""
    if isinstance(event, LeadOutcome | LeadActivity):
        return event.data.occurred_at
    return event.time


def _activity_row(event: CloudEvent) -> dict[str, Any]:
    if isinstance(event, LeadReceived):
        kind, at = "form_submit", event.time
    elif isinstance(event, LeadActivity):
        kind, at = event.data.kind, event.data.occurred_at
    else:
        return {}
    return {
        "id": new_id(),
        "lead_id": event.data.lead_id,
        "kind": kind,
        "occurred_at": at,
        "event_id": event.id,
    }


class _Batch:
    """What one batch changes, collected to be written with one statement per table."""

    def __init__(self, label: str, now: datetime) -> None:
        self.label, self.now = label, now
        self.touched: dict[UUID, None] = {}
        self.history: list[dict[str, Any]] = []
        self.moves: list[dict[str, Any]] = []
        self.events: list[CloudEvent] = []
        self.cause_at: datetime | None = None
        """When what the event being applied reports happened (``_happened``)."""

    def outcome(self, lead: dict[str, Any], event: LeadOutcome) -> None:
        """The stage move an outcome makes (noted as that stage's entry), or, when the lifecycle
        refuses it, a ``lead.outcome.refused`` entry saying why. Intake's ``lead.outcome`` entry
        already records the outcome itself."""
        data = event.data
        try:
            move = lifecycle.by_outcome(lead["stage"], data.outcome, reason=data.reason)
        except TransitionRefused as refused:
            detail: dict[str, Any] = {"outcome": data.outcome, "refused": str(refused)}
            self._note(lead, "lead.outcome.refused", event.id, detail)
            return
        if move is not None:
            self._move(lead, move)

    def scored(
        self, lead: dict[str, Any], decision: Decision, *, engaged_since_recycled: bool
    ) -> None:
        previous = lead["score"]
        lead.update(
            score=decision.fit_score,
            fit_grade=decision.grade,
            engagement_score=decision.engagement_score,
            ruleset=self.label,
            scored_at=self.now,
        )
        move = lifecycle.by_rules(
            lead["stage"], decision, engaged_since_recycled=engaged_since_recycled
        )
        data = LeadScoredData(
            lead_id=lead["id"],
            score=decision.fit_score,
            previous_score=previous,
            rules_fired=list(decision.fired),
            fit_grade=decision.grade,
            engagement_score=decision.engagement_score,
            stage=move.to_stage if move else lead["stage"],
        )
        event = self._emit(LeadScored, lead["id"], data)
        detail = {
            "score": data.score,
            "rules_fired": data.rules_fired,
            "fit_grade": data.fit_grade,
            "engagement_score": data.engagement_score,
            "stage": data.stage,
            "ruleset": self.label,
        }
        self._note(lead, event.type, event.id, detail)
        if move is not None:
            self._move(lead, move)

    def _move(self, lead: dict[str, Any], move: Transition) -> None:
        lead.update(stage=move.to_stage, stage_reason=move.reason, stage_changed_at=self.now)
        lead[f"{move.to_stage}_at"] = self.now
        kind, event_id = f"lead.{move.to_stage}", None
        if move.to_stage in STAGE_EVENTS:
            data = StageChangedData(
                lead_id=lead["id"],
                from_stage=move.from_stage,
                to_stage=move.to_stage,
                cause=move.cause,
                rules=list(move.rules),
                reason=move.reason,
                outcome=move.outcome,
                fit_score=lead["score"],
                fit_grade=lead["fit_grade"],
                engagement_score=lead["engagement_score"],
                caused_at=self.cause_at,
            )
            event_id = self._emit(STAGE_EVENTS[move.to_stage], lead["id"], data).id
        detail = {"from": move.from_stage, "cause": move.cause, "rules": list(move.rules)}
        if move.reason:
            detail["reason"] = move.reason
        self._note(lead, kind, event_id, {**detail, "ruleset": self.label})
        self.moves.append(
            {
                "id": new_id(),
                "lead_id": lead["id"],
                "occurred_at": self.now,
                "from_stage": move.from_stage,
                "to_stage": move.to_stage,
                "cause": move.cause,
                "rules": list(move.rules),
                "reason": move.reason,
                "outcome": move.outcome,
                "ruleset": self.label,
                "event_id": event_id,
            }
        )

    def _emit(self, kind: type[CloudEvent], lead_id: UUID, data: Any) -> CloudEvent:
        event = kind.about_lead(lead_id, data, source=SOURCE, time=self.now, ruleset=self.label)
        self.events.append(event)
        return event

    def _note(
        self, lead: dict[str, Any], kind: str, event_id: UUID | None, detail: dict[str, Any]
    ) -> None:
        self.touched[lead["id"]] = None
        lead["updated_at"] = self.now
        self.history.append(
            {
                "id": new_id(),
                "lead_id": lead["id"],
                "occurred_at": self.now,
                "kind": kind,
                "event_id": event_id,
                "detail": detail,
            }
        )
