"""The lifecycle state machine: every transition allowed and refused, by rules and by outcomes."""

from __future__ import annotations

import pytest

from services.scoring.lifecycle import (
    ALLOWED,
    STAGES,
    TransitionRefused,
    by_outcome,
    by_rules,
    can,
    is_wrong_owner,
    move,
)
from services.scoring.rules import Decision, ReasonHit, Verdict
from shared.events import WRONG_OWNER_REASONS

ALLOWED_PAIRS = sorted((a, b) for a, targets in ALLOWED.items() for b in targets)
REFUSED_PAIRS = sorted((a, b) for a in STAGES for b in STAGES if b not in ALLOWED[a] and a != b)


def decision(
    *,
    mql: bool = False,
    sql: bool = False,
    disqualified: ReasonHit | None = None,
    recycle: ReasonHit | None = None,
) -> Decision:
    return Decision(
        fit_score=40,
        grade="B",
        engagement_score=30,
        contributions=(),
        capped=(),
        mql=Verdict(mql, () if mql else ("x",)),
        sql=Verdict(sql, () if sql else ("y",)),
        disqualified=disqualified,
        recycle=recycle,
    )


def test_the_table_covers_every_stage() -> None:
    assert set(ALLOWED) == set(STAGES)
    assert len(ALLOWED_PAIRS) == 16 and len(REFUSED_PAIRS) == 9 * 8 - 16


@pytest.mark.parametrize(("from_stage", "to_stage"), ALLOWED_PAIRS)
def test_allowed_transitions(from_stage: str, to_stage: str) -> None:
    assert can(from_stage, to_stage)
    made = move(from_stage, to_stage, cause="outcome", reason="r")
    assert (made.from_stage, made.to_stage, made.reason) == (from_stage, to_stage, "r")


@pytest.mark.parametrize(("from_stage", "to_stage"), REFUSED_PAIRS)
def test_refused_transitions(from_stage: str, to_stage: str) -> None:
    assert not can(from_stage, to_stage)
    with pytest.raises(TransitionRefused, match=f"{from_stage} → {to_stage} is not allowed"):
        move(from_stage, to_stage, cause="rules")


COMPETITOR = ReasonHit("competitor", "competitor")
COLD = ReasonHit("gone-cold", "no_engagement")


@pytest.mark.parametrize(
    ("stage", "judged", "to_stage", "reason"),
    [
        ("inquiry", decision(mql=True), "mql", None),
        ("inquiry", decision(), None, None),
        ("inquiry", decision(mql=True, disqualified=COMPETITOR), "disqualified", "competitor"),
        ("recycled", decision(mql=True), "mql", None),
        ("recycled", decision(mql=True, recycle=COLD), None, None),  # no flip-flop
        ("mql", decision(mql=True), None, None),  # SAL needs sales' acceptance
        ("mql", decision(recycle=COLD), "recycled", "no_engagement"),
        ("sal", decision(sql=True), "sql", None),
        ("sal", decision(), None, None),
        ("sal", decision(disqualified=COMPETITOR), "disqualified", "competitor"),
        ("sql", decision(disqualified=COMPETITOR), None, None),  # sales owns it now
        ("sql", decision(recycle=COLD), None, None),
        ("won", decision(mql=True, sql=True), None, None),
        ("disqualified", decision(mql=True), None, None),
    ],
)
def test_rules_move_a_lead(
    stage: str, judged: Decision, to_stage: str | None, reason: str | None
) -> None:
    made = by_rules(stage, judged, engaged_since_recycled=True)
    assert (made and made.to_stage) == to_stage
    if made is not None:
        assert made.cause == "rules" and made.reason == reason


@pytest.mark.parametrize(
    ("stage", "engaged", "to_stage"),
    [
        ("recycled", False, None),  # the criteria still hold, but nothing new happened
        ("recycled", True, "mql"),
        ("inquiry", False, "mql"),  # never recycled: nothing to wait for
    ],
)
def test_a_recycled_lead_needs_new_engagement_to_become_an_mql_again(
    stage: str, engaged: bool, to_stage: str | None
) -> None:
    made = by_rules(stage, decision(mql=True), engaged_since_recycled=engaged)
    assert (made and made.to_stage) == to_stage


@pytest.mark.parametrize(
    ("stage", "outcome", "to_stage"),
    [
        ("mql", "accepted", "sal"),
        ("mql", "rejected", "recycled"),
        ("sal", "rejected", "recycled"),
        ("sql", "opportunity", "opportunity"),
        ("opportunity", "won", "won"),
        ("opportunity", "booked", "won"),
        ("opportunity", "lost", "lost"),
        ("sql", "lost", "lost"),
        ("mql", "responded", None),
        ("sal", "accepted", None),  # already there: nothing to do
    ],
)
def test_outcomes_move_a_lead(stage: str, outcome: str, to_stage: str | None) -> None:
    made = by_outcome(stage, outcome, reason="budget")
    assert (made and made.to_stage) == to_stage
    if made is not None:
        assert (made.cause, made.outcome, made.reason) == ("outcome", outcome, "budget")


@pytest.mark.parametrize(
    ("stage", "outcome"),
    [("inquiry", "accepted"), ("inquiry", "won"), ("mql", "won"), ("won", "lost"), ("lost", "won")],
)
def test_outcomes_the_lifecycle_refuses(stage: str, outcome: str) -> None:
    with pytest.raises(TransitionRefused):
        by_outcome(stage, outcome)


@pytest.mark.parametrize(
    ("stage", "reason", "to_stage"),
    [
        # "Not for me": routing reassigns the lead, which keeps its stage.
        *[("mql", reason, None) for reason in sorted(WRONG_OWNER_REASONS)],
        ("sal", "wrong_territory", None),
        ("inquiry", "not_mine", None),  # no refusal either: there is nothing to move
        # "Not a good lead": recycled, with the reason.
        ("mql", "no_budget", "recycled"),
        ("sal", "no_budget", "recycled"),
        ("mql", "bad_timing", "recycled"),
        ("mql", None, "recycled"),
        ("mql", "Wrong_Owner", "recycled"),  # reason codes are exact
    ],
)
def test_a_rejection_recycles_unless_its_reason_is_the_wrong_owner(
    stage: str, reason: str | None, to_stage: str | None
) -> None:
    assert is_wrong_owner("rejected", reason) is (to_stage is None)
    made = by_outcome(stage, "rejected", reason=reason)
    assert (made and made.to_stage) == to_stage
    if made is not None:
        assert (made.cause, made.outcome, made.reason) == ("outcome", "rejected", reason)


@pytest.mark.parametrize("outcome", ["accepted", "lost"])
def test_a_wrong_owner_reason_only_matters_on_a_rejection(outcome: str) -> None:
    assert not is_wrong_owner(outcome, "wrong_owner")
    assert by_outcome("sql" if outcome == "lost" else "mql", outcome, reason="wrong_owner")
