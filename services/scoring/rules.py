"""Qualification: a lead's facts and activities, judged by a compiled ruleset.

Fit (who they are) becomes a score and a grade; engagement (what they did) becomes a separate,
decaying score; the stage criteria, disqualifiers and recycle rules are read off the same single
program run. Pure: facts in, decision out; ``now`` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from services.scoring.facts import NO_ACTIVITY_DAYS, Activity, LeadFacts
from services.scoring.ruleset import CompiledRuleset, Criteria, Group

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Contribution:
    rule: str
    kind: str  # "fit" or "engagement"
    points: float
    count: int = 1


@dataclass(frozen=True, slots=True)
class Verdict:
    met: bool
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReasonHit:
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    fit_score: int
    grade: str
    engagement_score: int
    contributions: tuple[Contribution, ...]
    capped: tuple[tuple[str, float, int], ...]  # (group, before cap, after cap)
    mql: Verdict
    sql: Verdict
    disqualified: ReasonHit | None
    recycle: ReasonHit | None

    @property
    def fired(self) -> tuple[str, ...]:
        return tuple(c.rule for c in self.contributions)


def qualify(
    facts: LeadFacts, activities: Sequence[Activity], ruleset: CompiledRuleset, *, now: datetime
) -> Decision:
    plan = _plan_of(ruleset)
    engagement, counts, last_days, engaged, capped_engagement = _engagement(
        activities, ruleset, plan, now
    )
    values = ruleset.evaluate(
        {
            "lead": facts.as_cel(),
            "engagement": {"score": engagement, "counts": counts, "days_since_last": last_days},
        }
    )
    fired_fit = [contribution for i, contribution in plan.fit if values[i]]
    fit_raw, capped_fit = _capped(fired_fit, plan.fit_groups, ruleset.spec.fit.groups)
    fit = _round(fit_raw)
    grade = grade_for(fit, ruleset.spec.fit.grades)
    stages = ruleset.spec.stages
    return Decision(
        fit_score=fit,
        grade=grade,
        engagement_score=engagement,
        contributions=(*fired_fit, *engaged),
        capped=capped_fit + capped_engagement,
        mql=_verdict("mql", stages.mql, plan.mql, facts, grade, engagement, plan, values),
        sql=_verdict("sql", stages.sql, plan.sql, facts, grade, engagement, plan, values),
        disqualified=next((hit for i, hit in plan.disqualify if values[i]), None),
        recycle=next((hit for i, hit in plan.recycle if values[i]), None),
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What ``qualify`` reads off a ruleset for every lead, worked out once per ruleset."""

    fit: tuple[tuple[int, Contribution], ...]  # (slot, the contribution when it fires)
    fit_groups: dict[str, str | None]
    engagement_groups: dict[str, str | None]
    grades: tuple[str, ...]
    mql: int | None  # slot of stages.mql.when
    sql: int | None
    disqualify: tuple[tuple[int, ReasonHit], ...]
    recycle: tuple[tuple[int, ReasonHit], ...]


_PLANS: WeakKeyDictionary[CompiledRuleset, _Plan] = WeakKeyDictionary()


def _plan_of(ruleset: CompiledRuleset) -> _Plan:
    plan = _PLANS.get(ruleset)
    if plan is None:
        spec, index = ruleset.spec, ruleset.index
        plan = _PLANS[ruleset] = _Plan(
            fit=tuple(
                (index[("fit", "rules", i, "when")], Contribution(rule.id, "fit", rule.points))
                for i, rule in enumerate(spec.fit.rules)
            ),
            fit_groups={rule.id: rule.group for rule in spec.fit.rules},
            engagement_groups={rule.id: rule.group for rule in spec.engagement.rules},
            grades=tuple(spec.fit.grades),
            mql=index.get(("stages", "mql", "when")),
            sql=index.get(("stages", "sql", "when")),
            disqualify=_hits(ruleset, "disqualify"),
            recycle=_hits(ruleset, "recycle"),
        )
    return plan


def _hits(ruleset: CompiledRuleset, section: str) -> tuple[tuple[int, ReasonHit], ...]:
    rules: Any = getattr(ruleset.spec, section)
    return tuple(
        (ruleset.index[(section, i, "when")], ReasonHit(rule.id, rule.reason))
        for i, rule in enumerate(rules)
    )


def grade_for(fit_score: int, grades: dict[str, int]) -> str:
    for grade, minimum in grades.items():
        if fit_score >= minimum:
            return grade
    return list(grades)[-1]


def decay(age_days: float, half_life_days: float | None) -> float:
    if half_life_days is None or age_days <= 0:
        return 1.0
    return float(0.5 ** (age_days / half_life_days))


def _engagement(
    activities: Sequence[Activity], ruleset: CompiledRuleset, plan: _Plan, now: datetime
) -> tuple[int, dict[str, int], float, list[Contribution], tuple[tuple[str, float, int], ...]]:
    spec = ruleset.spec.engagement
    counts = dict.fromkeys(ruleset.kinds, 0)
    if not activities:
        return 0, counts, NO_ACTIVITY_DAYS, [], ()
    past = sorted((a for a in activities if a.occurred_at <= now), key=lambda a: a.occurred_at)
    for activity in past:
        counts[activity.kind] = counts.get(activity.kind, 0) + 1
    last_days = (now - past[-1].occurred_at).total_seconds() / DAY_S if past else NO_ACTIVITY_DAYS
    contributions = []
    for rule in spec.rules:
        ages = [
            (now - a.occurred_at).total_seconds() / DAY_S
            for a in reversed(past)
            if a.kind in rule.activity
        ]
        if rule.within_days is not None:
            ages = [age for age in ages if age <= rule.within_days]
        ages = ages[: rule.max_count] if rule.max_count else ages
        if ages:
            points = sum(rule.points * decay(age, spec.half_life_days) for age in ages)
            contributions.append(Contribution(rule.id, "engagement", round(points, 2), len(ages)))
    total, capped = _capped(contributions, plan.engagement_groups, spec.groups)
    if spec.cap is not None:
        total = min(total, spec.cap)
    return _round(total), counts, round(last_days, 3), contributions, capped


def _capped(
    contributions: Iterable[Contribution],
    groups_of: dict[str, str | None],
    groups: dict[str, Group],
) -> tuple[float, tuple[tuple[str, float, int], ...]]:
    """Sum with each group held to its cap (a negative cap is a floor); report the caps hit."""
    sums: dict[str | None, float] = {}
    for c in contributions:
        group = groups_of.get(c.rule)
        sums[group] = sums.get(group, 0.0) + c.points
    total, hit = 0.0, []
    for group, value in sums.items():
        if group is not None:
            cap = groups[group].cap
            held = min(value, cap) if cap >= 0 else max(value, cap)
            if held != value:
                hit.append((group, round(value, 2), cap))
            value = held
        total += value
    return total, tuple(hit)


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def _verdict(
    stage: str,
    criteria: Criteria,
    slot: int | None,
    facts: LeadFacts,
    grade: str,
    engagement: int,
    plan: _Plan,
    values: list[bool],
) -> Verdict:
    missing = []
    grades = plan.grades
    if criteria.min_grade is not None and grades.index(grade) > grades.index(criteria.min_grade):
        missing.append(f"fit grade {criteria.min_grade} or better (is {grade})")
    if criteria.min_engagement is not None and engagement < criteria.min_engagement:
        missing.append(f"engagement score {criteria.min_engagement} or more (is {engagement})")
    missing += [f"{name} is required" for name in criteria.require if not facts.has(name)]
    if slot is not None and not values[slot]:
        missing.append(f"condition stages.{stage}.when: {criteria.when}")
    return Verdict(not missing, tuple(missing))
