"""The lead lifecycle: which stage may follow which, and what moves a lead.

inquiry → MQL → SAL (sales accepted) → SQL → opportunity → won | lost, plus recycled (back to
nurture, with a reason) and disqualified. Rules move a lead up to MQL, from SAL to SQL, and to
recycled or disqualified; CRM outcomes move it through acceptance and the sales stages. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.scoring.rules import Decision
from shared.events.engagement import WRONG_OWNER_REASONS

Stage = Literal[
    "inquiry", "mql", "sal", "sql", "opportunity", "won", "lost", "recycled", "disqualified"
]
Outcome = Literal["responded", "accepted", "rejected", "opportunity", "booked", "won", "lost"]
STAGES: tuple[Stage, ...] = (
    "inquiry",
    "mql",
    "sal",
    "sql",
    "opportunity",
    "won",
    "lost",
    "recycled",
    "disqualified",
)
ALLOWED: dict[str, frozenset[str]] = {
    "inquiry": frozenset({"mql", "disqualified"}),
    "mql": frozenset({"sal", "recycled", "disqualified"}),
    "sal": frozenset({"sql", "recycled", "disqualified"}),
    "sql": frozenset({"opportunity", "recycled", "lost"}),
    "opportunity": frozenset({"won", "lost"}),
    "won": frozenset(),
    "lost": frozenset({"recycled"}),
    "recycled": frozenset({"mql", "disqualified"}),
    "disqualified": frozenset(),
}
OUTCOME_STAGE: dict[str, Stage | None] = {
    "responded": None,  # first touch: the SLA clock's business, not a stage
    "accepted": "sal",
    "rejected": "recycled",
    "opportunity": "opportunity",
    "booked": "won",
    "won": "won",
    "lost": "lost",
}
NEXT_STAGE: dict[str, str] = {"inquiry": "mql", "recycled": "mql", "mql": "sal", "sal": "sql"}


@dataclass(frozen=True, slots=True)
class Transition:
    from_stage: str
    to_stage: str
    cause: Literal["rules", "outcome"]
    rules: tuple[str, ...] = ()
    reason: str | None = None
    outcome: str | None = None


class TransitionRefused(ValueError):
    def __init__(self, from_stage: str, to_stage: str) -> None:
        allowed = ", ".join(sorted(ALLOWED.get(from_stage, ()))) or "none"
        super().__init__(f"{from_stage} → {to_stage} is not allowed (from {from_stage}: {allowed})")
        self.from_stage, self.to_stage = from_stage, to_stage


def is_wrong_owner(outcome: str, reason: str | None) -> bool:
    return outcome == "rejected" and (reason or "") in WRONG_OWNER_REASONS


def can(from_stage: str, to_stage: str) -> bool:
    return to_stage in ALLOWED.get(from_stage, frozenset())


def move(
    from_stage: str,
    to_stage: str,
    *,
    cause: Literal["rules", "outcome"],
    rules: tuple[str, ...] = (),
    reason: str | None = None,
    outcome: str | None = None,
) -> Transition:
    if not can(from_stage, to_stage):
        raise TransitionRefused(from_stage, to_stage)
    return Transition(from_stage, to_stage, cause, rules, reason, outcome)


def by_rules(stage: str, decision: Decision, *, engaged_since_recycled: bool) -> Transition | None:
    """The move the rules call for, if any: disqualify first, then promote, then recycle.

    A recycled lead is back in nurture: it becomes an MQL again only on engagement that came
    after it was recycled (``engaged_since_recycled``), not at once because the criteria that
    made it an MQL the first time still hold."""
    if decision.disqualified and can(stage, "disqualified"):
        hit = decision.disqualified
        return move(stage, "disqualified", cause="rules", rules=(hit.rule,), reason=hit.reason)
    promotable = stage == "inquiry" or (stage == "recycled" and engaged_since_recycled)
    if promotable and decision.mql.met and decision.recycle is None:
        return move(stage, "mql", cause="rules", rules=decision.fired)
    if stage == "sal" and decision.sql.met:
        return move(stage, "sql", cause="rules", rules=decision.fired)
    if stage == "mql" and decision.recycle is not None:
        hit = decision.recycle
        return move(stage, "recycled", cause="rules", rules=(hit.rule,), reason=hit.reason)
    return None


def by_outcome(stage: str, outcome: str, *, reason: str | None = None) -> Transition | None:
    """The move a CRM outcome makes; ``None`` when the outcome changes no stage.

    A rejection whose reason means *wrong owner* is about the owner, not the lead: routing
    reassigns it (services/routing/handlers.py) and it keeps its stage. Any other rejection
    recycles it with the reason."""
    if is_wrong_owner(outcome, reason):
        return None
    target = OUTCOME_STAGE[outcome]
    if target is None or target == stage:
        return None
    return move(stage, target, cause="outcome", reason=reason, outcome=outcome)
