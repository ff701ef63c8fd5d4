"""A ruleset file: its schema, its YAML read with line numbers, and its compilation.

Every CEL condition of a ruleset (fit rules, stage criteria, disqualifiers, recycle rules) is
compiled into ONE program that returns a list of booleans: converting the facts into CEL values
costs far more than evaluating, so it is done once per lead, not once per rule. A ruleset that
does not parse, does not match the schema, or whose conditions do not type-check against the
facts is refused with every problem's rule, line and reason. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

import cel
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.scoring.facts import ACTIVITY_KINDS, REQUIRABLE, sample_variables
from shared.cel_flat import FlatProgram, flat_program

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
Code = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")]
Condition = Annotated[str, Field(min_length=1, max_length=2000)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Group(_Spec):
    cap: int = Field(description="The most (or, if negative, the least) the group can add")


class FitRule(_Spec):
    id: RuleId
    when: Condition
    points: int
    group: str | None = None
    description: str = ""


class EngagementRule(_Spec):
    id: RuleId
    activity: list[str] = Field(min_length=1, description="Activity kinds that score")
    points: int = Field(description="Per occurrence, before decay")
    group: str | None = None
    max_count: int | None = Field(None, ge=1, description="Count at most the N most recent")
    within_days: float | None = Field(None, gt=0, description="Ignore older occurrences")
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("activity"), str):
            return {**data, "activity": [data["activity"]]}
        return data


class Fit(_Spec):
    grades: dict[str, int] = Field(
        description="Grade → minimum fit score, best first; below every minimum: the last grade"
    )
    groups: dict[str, Group] = Field(default_factory=dict)
    rules: list[FitRule] = Field(default_factory=list)

    @field_validator("grades")
    @classmethod
    def _ordered(cls, grades: dict[str, int]) -> dict[str, int]:
        minimums = list(grades.values())
        if not minimums or minimums != sorted(minimums, reverse=True):
            raise ValueError("grades must be listed best first with falling minimums")
        return grades


class Engagement(_Spec):
    half_life_days: float | None = Field(None, gt=0)
    cap: int | None = None
    groups: dict[str, Group] = Field(default_factory=dict)
    rules: list[EngagementRule] = Field(default_factory=list)


class Criteria(_Spec):
    min_grade: str | None = None
    min_engagement: int | None = None
    require: list[str] = Field(default_factory=list)
    when: Condition | None = None


class Stages(_Spec):
    mql: Criteria
    sql: Criteria = Criteria()


class ReasonRule(_Spec):
    id: RuleId
    reason: Code
    when: Condition
    description: str = ""


class RulesetSpec(_Spec):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    fit: Fit
    engagement: Engagement = Engagement()
    stages: Stages
    disqualify: list[ReasonRule] = Field(default_factory=list)
    recycle: list[ReasonRule] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RuleProblem:
    rule: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "?"
        return f"{self.rule} ({where}): {self.reason}"


class RulesetInvalid(ValueError):
    def __init__(self, problems: list[RuleProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Slot:
    """One condition in the compiled program: whose it is and where it sits in the file."""

    rule: str
    source: str
    path: tuple[str | int, ...]


@dataclass(eq=False)
class CompiledRuleset:
    spec: RulesetSpec
    text: str
    content_hash: str
    slots: tuple[Slot, ...]
    program: Any
    kinds: tuple[str, ...]
    fast: FlatProgram | None = None
    context: Any = field(default_factory=cel.Context)
    index: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    used: dict[str, frozenset[str] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {slot.path: i for i, slot in enumerate(self.slots)}
        self.used = _used([slot.source for slot in self.slots])

    def evaluate(self, variables: dict[str, Any]) -> list[bool]:
        """Every condition's value, in slot order; one program run for the lot.

        Only the fields the conditions name are handed over, as top-level variables where the
        ruleset allows (``shared.cel_flat``): converting values into CEL is what costs."""
        if not self.slots:
            return []
        if self.fast is not None:
            try:
                return self.fast.run(self.fast.variables(variables))
            except Exception:  # noqa: BLE001, S110 — the nested form below says which rule failed
                pass
        variables = {
            name: value if (keep := self.used.get(name)) is None else _only(value, keep)
            for name, value in variables.items()
        }
        self.context.update(variables)
        try:
            return list(self.program.execute(self.context))
        except Exception:  # noqa: BLE001 — one rule failing on these facts must not sink the rest
            return [_alone(slot, variables) for slot in self.slots]


def _only(value: dict[str, Any], keep: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k in keep}


def _used(sources: list[str]) -> dict[str, frozenset[str] | None]:
    """Per variable, the fields the conditions name; ``None`` when one uses it otherwise."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "''", " ".join(sources))  # not inside string literals
    used: dict[str, frozenset[str] | None] = {}
    for name in ("lead", "engagement"):
        whole = re.search(rf"\b{name}\b(?!\s*\.\s*\w)", text)
        fields = re.findall(rf"\b{name}\s*\.\s*(\w+)", text)
        used[name] = None if whole else frozenset(fields)
    return used


def _alone(slot: Slot, variables: dict[str, Any]) -> bool:
    try:
        return cel.compile(slot.source).execute(variables) is True
    except Exception:  # noqa: BLE001 — a rule that cannot be evaluated on these facts doesn't fire
        return False


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compile_ruleset(text: str) -> CompiledRuleset:
    """Parse, validate and compile; raise ``RulesetInvalid`` naming every rule, line and reason."""
    document, lines = _load(text)
    try:
        spec = RulesetSpec.model_validate(document)
    except ValidationError as error:
        raise RulesetInvalid(
            [_schema_problem(e, document, lines) for e in error.errors()]
        ) from None
    consistency = _consistency(spec, lines)
    if consistency:
        raise RulesetInvalid(consistency)
    slots = _slots(spec)
    named = [kind for rule in spec.engagement.rules for kind in rule.activity]
    kinds = tuple(dict.fromkeys([*ACTIVITY_KINDS, *named]))
    samples = sample_variables(kinds)
    problems = [p for slot in slots if (p := _check(slot, lines, samples)) is not None]
    if problems:
        raise RulesetInvalid(problems)
    program = cel.compile("[" + ", ".join(f"({s.source})" for s in slots) + "]") if slots else None
    fast = flat_program([s.source for s in slots], program, samples) if slots else None
    return CompiledRuleset(spec, text, content_hash(text), tuple(slots), program, kinds, fast)


def _load(text: str) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise RulesetInvalid([RuleProblem("(file)", line, f"not YAML: {error}")]) from None
    if not isinstance(document, dict):
        raise RulesetInvalid([RuleProblem("(file)", 1, "a ruleset is a YAML mapping")])
    lines: dict[tuple[str | int, ...], int] = {}
    _walk(node, (), lines)
    return document, lines


def _walk(node: Any, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _walk(value, (*path, key.value), lines)
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines)


def _schema_problem(
    error: Any, document: Any, lines: dict[tuple[str | int, ...], int]
) -> RuleProblem:
    location = tuple(p for p in error["loc"] if isinstance(p, str | int))
    line = None
    for end in range(len(location), -1, -1):
        if location[:end] in lines:
            line = lines[location[:end]]
            break
    return RuleProblem(_rule_at(location, document), line, error["msg"])


def _rule_at(location: tuple[str | int, ...], document: Any) -> str:
    node = document
    for part in location:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            return node["id"]
    return ".".join(str(p) for p in location) or "(file)"


def _consistency(spec: RulesetSpec, lines: dict[tuple[str | int, ...], int]) -> list[RuleProblem]:
    """What the schema alone cannot say: unique ids, known grades, groups and fields."""
    problems = []
    seen: set[str] = set()
    sections = (("fit", "rules"), ("engagement", "rules"), ("disqualify",), ("recycle",))
    for section in sections:
        rules: Any = spec
        for part in section:
            rules = getattr(rules, part)
        for i, rule in enumerate(rules):
            if rule.id in seen:
                problems.append(RuleProblem(rule.id, lines.get((*section, i)), "id used twice"))
            seen.add(rule.id)
            groups = getattr(spec, section[0]).groups if len(section) == 2 else None
            if groups is not None and rule.group is not None and rule.group not in groups:
                reason = f"group {rule.group!r} is not declared in {section[0]}.groups"
                problems.append(RuleProblem(rule.id, lines.get((*section, i, "group")), reason))
    for stage in ("mql", "sql"):
        criteria: Criteria = getattr(spec.stages, stage)
        where = f"stages.{stage}"
        if criteria.min_grade is not None and criteria.min_grade not in spec.fit.grades:
            reason = f"min_grade {criteria.min_grade!r} is not one of {list(spec.fit.grades)}"
            problems.append(RuleProblem(where, lines.get(("stages", stage, "min_grade")), reason))
        for field_name in sorted(set(criteria.require) - REQUIRABLE):
            reason = f"require: unknown field {field_name!r}; known: {sorted(REQUIRABLE)}"
            problems.append(RuleProblem(where, lines.get(("stages", stage, "require")), reason))
    return problems


def _slots(spec: RulesetSpec) -> list[Slot]:
    slots = [Slot(r.id, r.when, ("fit", "rules", i, "when")) for i, r in enumerate(spec.fit.rules)]
    for stage in ("mql", "sql"):
        criteria: Criteria = getattr(spec.stages, stage)
        if criteria.when is not None:
            slots.append(Slot(f"stages.{stage}", criteria.when, ("stages", stage, "when")))
    for section in ("disqualify", "recycle"):
        for i, rule in enumerate(getattr(spec, section)):
            slots.append(Slot(rule.id, rule.when, (section, i, "when")))
    return slots


def _check(
    slot: Slot, lines: dict[tuple[str | int, ...], int], samples: tuple[dict, dict]
) -> RuleProblem | None:
    """Parse, then type-check by running on complete and on empty facts (CEL has no schema)."""
    line = lines.get(slot.path)
    try:
        program = cel.compile(slot.source)
    except ValueError as error:
        return RuleProblem(slot.rule, line, f"does not parse: {_first_line(error)}")
    for facts in samples:
        try:
            value = program.execute(facts)
        except Exception as error:  # noqa: BLE001 — any failure here is the rule's fault
            return RuleProblem(slot.rule, line, f"does not type-check: {_first_line(error)}")
        if not isinstance(value, bool):
            kind = type(value).__name__
            return RuleProblem(slot.rule, line, f"must be true or false, not {kind}")
    return None


def _first_line(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, KeyError):
        return f"no such field {text}"
    return text.split("\n", 1)[0][:300]
