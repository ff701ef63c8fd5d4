"""Routing rules: a YAML file, versioned, whose CEL conditions pick a team, first match wins.

```yaml
name: routing 2026-Q4
default_queue: triage                 # the team whose queue gets leads no rule matches
account_match: {enabled: true, min_similarity: 90}
reassignment: {max_per_lead: 3}
rules:
  - id: enterprise
    when: lead.employees >= 1000      # CEL over `lead` (see facts.py)
    team: named-accounts
    strategy: least_loaded            # optional: overrides the team's own
  - id: dach
    when: lead.country in ["DE", "AT", "CH"]
    team: dach
    match: [language]                 # only reps who speak the lead's language
```

All conditions are compiled into ONE CEL program returning a list of booleans (converting the
facts costs more than evaluating, see REFERENCE.md), fed, where the rules allow, only the fields
they name as top-level variables (``lead.country`` read from ``lead__country``, as scoring does:
shared/cel_flat.py). Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import cel
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.routing.facts import EMPTY_FACTS, SAMPLE_FACTS
from shared.cel_flat import FlatProgram, flat_program
from shared.conditions import condition_problem

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
TeamName = Annotated[str, Field(min_length=1, max_length=100)]
Matchable = Literal["territory", "language", "product"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouteRule(_Spec):
    id: RuleId
    when: str = Field(min_length=1, max_length=2000)
    team: TeamName
    strategy: Literal["round_robin", "least_loaded", "capacity"] | None = None
    match: list[Matchable] = Field(
        default_factory=list, description="Rep attributes that must fit the lead"
    )
    roles: list[str] = Field(default_factory=list, description="Reps with one of these roles")
    segments: list[str] = Field(default_factory=list, description="Reps in one of these segments")
    description: str = ""


class AccountMatchSpec(_Spec):
    enabled: bool = True
    min_similarity: float = Field(90.0, ge=50, le=100, description="rapidfuzz score, 0–100")


class ReassignmentSpec(_Spec):
    max_per_lead: int = Field(3, ge=0, le=100, description="Then the lead waits for a manager")


class RoutingSpec(_Spec):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    default_queue: TeamName
    account_match: AccountMatchSpec = AccountMatchSpec()
    reassignment: ReassignmentSpec = ReassignmentSpec()
    rules: list[RouteRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RoutingSpec:
        ids = [rule.id for rule in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rule ids must be unique: {', '.join(twice)}")
        return self


class RoutingInvalid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(eq=False)
class CompiledRouting:
    spec: RoutingSpec
    text: str
    content_hash: str
    program: Any
    fast: FlatProgram | None = None
    context: Any = field(default_factory=cel.Context)

    def first_match(self, lead: dict[str, Any]) -> RouteRule | None:
        """The first rule whose condition holds; a rule failing on these facts does not match."""
        if self.program is None:
            return None
        values = self.values(lead)
        for rule, value in zip(self.spec.rules, values, strict=True):
            if value is True:
                return rule
        return None

    def values(self, lead: dict[str, Any]) -> list[Any]:
        """Every condition's value, in rule order (``False`` for one that fails on ``lead``)."""
        if self.fast is not None:
            try:
                return self.fast.run(self.fast.variables({"lead": lead}))
            except Exception:  # noqa: BLE001, S110 — the nested form below says which rule failed
                pass
        return self.nested_values(lead)

    def nested_values(self, lead: dict[str, Any]) -> list[Any]:
        """As ``values``, always from the ``lead`` map (the form every rule was checked in)."""
        try:
            self.context.update({"lead": lead})
            return list(self.program.execute(self.context))
        except Exception:  # noqa: BLE001 — evaluate one by one so one bad rule can't sink all
            return [_alone(rule.when, lead) for rule in self.spec.rules]


def _alone(source: str, lead: dict[str, Any]) -> bool:
    try:
        return cel.compile(source).execute({"lead": lead}) is True
    except Exception:  # noqa: BLE001
        return False


BUILT_IN = "name: built-in\ndefault_queue: default\n"
"""Used until a routing ruleset is activated: account match, then the team called ``default``."""


def compile_routing(text: str) -> CompiledRouting:
    """Parse, validate, type-check every condition on sample facts; raise naming every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RoutingInvalid([f"not YAML: {error}"]) from None
    try:
        spec = RoutingSpec.model_validate(document)
    except ValidationError as error:
        raise RoutingInvalid(
            [
                f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
                for e in error.errors()
            ]
        ) from None
    problems = [p for rule in spec.rules if (p := _check(rule)) is not None]
    if problems:
        raise RoutingInvalid(problems)
    program = fast = None
    if spec.rules:
        sources = [rule.when for rule in spec.rules]
        program = cel.compile("[" + ", ".join(f"({s})" for s in sources) + "]")
        samples = [{"lead": SAMPLE_FACTS}, {"lead": EMPTY_FACTS}]
        fast = flat_program(sources, program, samples)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return CompiledRouting(spec, text, digest, program, fast)


def _check(rule: RouteRule) -> str | None:
    problem = condition_problem(rule.when, (SAMPLE_FACTS, EMPTY_FACTS))
    return f"rule {rule.id}: {problem}" if problem else None
