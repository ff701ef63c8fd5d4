"""The pure evaluator: fit points and caps, grades, decaying engagement, stage criteria."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.scoring.facts import Activity, LeadFacts
from services.scoring.rules import decay, grade_for, qualify
from services.scoring.ruleset import CompiledRuleset, compile_ruleset

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
RULES = """
name: test
fit:
  grades: {A: 50, B: 30, C: 10, D: 0}
  groups:
    size: {cap: 25}
    penalties: {cap: -15}
  rules:
    - {id: business-email, when: "!lead.free_mail && lead.email_domain != ''", points: 20}
    - {id: big, group: size, when: "lead.employees >= 100", points: 20}
    - {id: bigger, group: size, when: "lead.employees >= 1000", points: 20}
    - {id: free-mail, group: penalties, when: "lead.free_mail", points: -10}
    - {id: no-phone, group: penalties, when: "lead.phone == ''", points: -10}
    - {id: seats, when: "'seats' in lead.custom && lead.custom['seats'] > 10", points: 5}
engagement:
  half_life_days: 10
  cap: 60
  groups:
    web: {cap: 6}
  rules:
    - {id: demo, activity: demo_request, points: 40, max_count: 1}
    - {id: views, activity: page_view, group: web, points: 2}
    - {id: clicks, activity: email_click, points: 4, within_days: 15}
    - {id: unsubscribed, activity: unsubscribe, points: -30}
stages:
  mql: {min_grade: B, min_engagement: 20, require: [company]}
  sql: {min_grade: A, when: "lead.country != ''"}
disqualify:
  - {id: competitor, reason: competitor, when: "lead.email_domain == 'rival.com'"}
recycle:
  - {id: cold, reason: no_engagement, when: "engagement.days_since_last > 30.0"}
"""


@pytest.fixture(scope="module")
def ruleset() -> CompiledRuleset:
    return compile_ruleset(RULES)


def make_lead(**overrides: object) -> LeadFacts:
    fields: dict[str, object] = {
        "email": "ada@acme.com",
        "phone": "+4930123",
        "company": "Acme",
        "employees": 50,
    }
    fields.update(overrides)
    return LeadFacts(**fields)  # type: ignore[arg-type]


def did(kind: str, days_ago: float) -> Activity:
    return Activity(kind, NOW - timedelta(days=days_ago))


@pytest.mark.parametrize(
    ("age", "half_life", "expected"),
    [(0, 10, 1.0), (10, 10, 0.5), (20, 10, 0.25), (5, None, 1.0), (-1, 10, 1.0), (30, 30, 0.5)],
)
def test_decay_halves_every_half_life(age: float, half_life: float | None, expected: float) -> None:
    assert decay(age, half_life) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("lead", "fit", "fired"),
    [
        (make_lead(), 20, ["business-email"]),
        (make_lead(employees=100), 40, ["business-email", "big"]),
        # big + bigger = 40, held to the group's cap of 25
        (make_lead(employees=5000), 45, ["business-email", "big", "bigger"]),
        # negative points: -10 each, the penalties group floored at -15
        (make_lead(email="ada@gmail.com", phone=""), -15, ["free-mail", "no-phone"]),
        (make_lead(email="ada@gmail.com"), -10, ["free-mail"]),
        (make_lead(custom={"seats": 12}), 25, ["business-email", "seats"]),
    ],
)
def test_fit_points_caps_and_negative_points(
    ruleset: CompiledRuleset, lead: LeadFacts, fit: int, fired: list[str]
) -> None:
    decision = qualify(lead, [], ruleset, now=NOW)
    assert decision.fit_score == fit
    assert [c.rule for c in decision.contributions if c.kind == "fit"] == fired


def test_a_cap_hit_is_reported(ruleset: CompiledRuleset) -> None:
    decision = qualify(make_lead(employees=5000), [], ruleset, now=NOW)
    assert decision.capped == (("size", 40.0, 25),)


@pytest.mark.parametrize(
    ("score", "grade"), [(80, "A"), (50, "A"), (49, "B"), (30, "B"), (10, "C"), (0, "D"), (-5, "D")]
)
def test_grades_by_fit_score(score: int, grade: str) -> None:
    assert grade_for(score, {"A": 50, "B": 30, "C": 10, "D": 0}) == grade


@pytest.mark.parametrize(
    ("activities", "engagement"),
    [
        ([], 0),
        ([did("demo_request", 0)], 40),
        ([did("demo_request", 10)], 20),  # one half-life: half the points
        ([did("demo_request", 20)], 10),  # two half-lives
        ([did("demo_request", 0), did("demo_request", 10)], 40),  # max_count 1: the newest
        ([did("page_view", 0)] * 5, 6),  # 5 x 2 = 10, the web group capped at 6
        ([did("email_click", 0), did("email_click", 20)], 4),  # the older one is out of window
        ([did("demo_request", 0), did("unsubscribe", 0)], 10),  # 40 - 30
        ([did("demo_request", 0)] + [did("email_click", 0)] * 6, 60),  # 40 + 24, total cap 60
        ([did("demo_request", -1)], 0),  # not happened yet
        ([did("webinar_attended", 0)], 0),  # a kind no rule scores
    ],
)
def test_engagement_decays_and_is_capped(
    ruleset: CompiledRuleset, activities: list[Activity], engagement: int
) -> None:
    assert qualify(make_lead(), activities, ruleset, now=NOW).engagement_score == engagement


def test_fit_and_engagement_stay_separate(ruleset: CompiledRuleset) -> None:
    decision = qualify(make_lead(), [did("demo_request", 0)], ruleset, now=NOW)
    assert (decision.fit_score, decision.grade, decision.engagement_score) == (20, "C", 40)


@pytest.mark.parametrize(
    ("lead", "activities", "met", "missing"),
    [
        (make_lead(employees=100), [did("demo_request", 0)], True, ()),
        (make_lead(), [did("demo_request", 0)], False, ("fit grade B or better (is C)",)),
        (
            make_lead(employees=100, company=""),
            [did("page_view", 0)],
            False,
            ("engagement score 20 or more (is 2)", "company is required"),
        ),
    ],
)
def test_mql_criteria_say_what_is_missing(
    ruleset: CompiledRuleset,
    lead: LeadFacts,
    activities: list[Activity],
    met: bool,
    missing: tuple[str, ...],
) -> None:
    verdict = qualify(lead, activities, ruleset, now=NOW).mql
    assert (verdict.met, verdict.missing) == (met, missing)


def test_sql_criteria_include_the_cel_condition(ruleset: CompiledRuleset) -> None:
    strong = make_lead(employees=5000)  # 45: grade B
    verdict = qualify(strong, [], ruleset, now=NOW).sql
    assert not verdict.met
    assert verdict.missing == (
        "fit grade A or better (is B)",
        "condition stages.sql.when: lead.country != ''",
    )
    top = make_lead(employees=5000, country="DE", custom={"seats": 50})
    assert qualify(top, [], ruleset, now=NOW).sql.met


def test_disqualifiers_and_recycle_rules_give_their_reason(ruleset: CompiledRuleset) -> None:
    rival = qualify(make_lead(email="x@rival.com"), [], ruleset, now=NOW)
    assert rival.disqualified is not None and rival.disqualified.reason == "competitor"
    cold = qualify(make_lead(), [did("page_view", 31)], ruleset, now=NOW)
    assert cold.recycle is not None and cold.recycle.rule == "cold"
    warm = qualify(make_lead(), [did("page_view", 29)], ruleset, now=NOW)
    assert warm.recycle is None and warm.disqualified is None


def test_a_rule_failing_at_run_time_does_not_sink_the_others(ruleset: CompiledRuleset) -> None:
    # 'seats' passes type-checking, but here it is text: that rule alone does not fire
    decision = qualify(make_lead(custom={"seats": "many"}), [], ruleset, now=NOW)
    assert decision.fired == ("business-email",)


def test_the_whole_ruleset_is_one_program(ruleset: CompiledRuleset) -> None:
    assert len(ruleset.slots) == 6 + 1 + 1 + 1  # fit rules, sql.when, disqualify, recycle
    assert ruleset.program.source.count("(lead.employees >= 100)") == 1
    assert ruleset.program.source.startswith("[")


def test_the_bundled_default_ruleset_compiles() -> None:
    text = (Path(__file__).parents[3] / "rules" / "default.yaml").read_text()
    compiled = compile_ruleset(text)
    decision = qualify(
        LeadFacts(email="ada@example.com", company="Acme"),
        [Activity("form_submit", NOW)],
        compiled,
        now=NOW,
    )
    assert (decision.fit_score, decision.grade, decision.engagement_score) == (30, "C", 15)
    assert decision.mql.met
