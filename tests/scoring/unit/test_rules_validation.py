"""A ruleset that does not parse or type-check is refused, naming the rule, the line, the reason."""

from __future__ import annotations

import pytest

from services.scoring.ruleset import RuleProblem, RulesetInvalid, compile_ruleset

BASE = """name: t
fit:
  grades: {A: 10, B: 0}
  rules:
    - id: ok
      when: "lead.company != ''"
      points: 10
    - id: checked
      when: "CONDITION"
      points: 5
stages:
  mql: {min_grade: A}
"""


def at(condition: str) -> str:
    return BASE.replace("CONDITION", condition)


def problems(text: str) -> list[RuleProblem]:
    with pytest.raises(RulesetInvalid) as refused:
        compile_ruleset(text)
    return refused.value.problems


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("lead.company != ", "does not parse"),
        ("lead.employees > 'ten'", "does not type-check"),
        ("lead.employes > 10", "does not type-check: no such field 'employes'"),
        ("lead.employees + 1", "must be true or false, not int"),
        ("lead.custom['plan'] == 'x'", "does not type-check"),  # must test `'plan' in` first
        ("nosuch.thing", "does not type-check"),
    ],
)
def test_a_bad_condition_is_refused_with_rule_line_and_reason(condition: str, reason: str) -> None:
    [problem] = problems(at(condition))
    assert problem.rule == "checked"
    assert problem.line == 9
    assert problem.reason.startswith(reason), problem.reason


def test_every_bad_rule_is_named_at_once() -> None:
    text = at("lead.x >").replace("lead.company != ''", "lead.company >")
    assert [(p.rule, p.line) for p in problems(text)] == [("ok", 6), ("checked", 9)]


@pytest.mark.parametrize(
    ("text", "rule", "line", "reason"),
    [
        ("name: t\nfit: [1\n", "(file)", 3, "not YAML"),
        ("- a list\n", "(file)", 1, "a ruleset is a YAML mapping"),
        (
            at("true").replace("points: 5", "points: five"),
            "checked",
            10,
            "Input should be a valid integer",
        ),
        (
            at("true").replace("id: checked", "id: ok"),
            "ok",
            8,
            "id used twice",
        ),
        (
            at("true").replace("min_grade: A", "min_grade: Z"),
            "stages.mql",
            12,
            "min_grade 'Z' is not one of",
        ),
        (
            at("true").replace("points: 5", "points: 5\n      group: x"),
            "checked",
            11,
            "group 'x' is not declared",
        ),
        (
            at("true").replace("{A: 10, B: 0}", "{A: 0, B: 10}"),
            "fit.grades",
            3,
            "Value error, grades must be listed best first",
        ),
    ],
)
def test_schema_problems_name_where_they_are(text: str, rule: str, line: int, reason: str) -> None:
    [problem] = problems(text)
    assert (problem.rule, problem.line) == (rule, line)
    assert problem.reason.startswith(reason) or reason in problem.reason, problem.reason
