"""Routing rules fed as top-level variables (shared/cel_flat.py) decide as the ``lead`` map
does: the same value for every rule on many generated leads, and the nested form kept where the
rewrite would not be exact."""

from __future__ import annotations

import random
from typing import Any

import pytest

from services.routing.facts import EMPTY_FACTS, SAMPLE_FACTS
from services.routing.rules import CompiledRouting, compile_routing

CONDITIONS = [
    "lead.employees >= 5000",
    "lead.country in ['DE','AT','CH'] && lead.employees >= 500",
    "lead.industry == 'fintech' || lead.product.startsWith('plat')",
    "lead.email_domain.endsWith('.edu') && !lead.free_mail",
    "lead.source == 'partner' ? lead.score > 10 : lead.score > 60",
    'lead.title.contains("lead.title") || lead.title.matches("(?i)^vp")',
    "size(lead.company) > 12 && lead.language in ['de', 'fr']",
    "lead . region == 'BY' || lead.postal_code.startsWith('10')",
    "lead.employees / 10 > 20 && lead.stage != 'sql'",
    "lead.employees > 100 == (lead.score >= 50)",
    "lead.email != '' && lead.website == ''",
]


def ruleset(conditions: list[str]) -> CompiledRouting:
    rules = "\n".join(
        f"  - {{id: r{i}, when: {condition!r}, team: t}}" for i, condition in enumerate(conditions)
    )
    return compile_routing(f"name: t\ndefault_queue: q\nrules:\n{rules}\n")


def generated_lead(rng: random.Random) -> dict[str, Any]:
    def text(*choices: str) -> str:
        return rng.choice(["", *choices])

    return {
        **EMPTY_FACTS,
        "title": text("VP Sales", "vp engineering", "CTO", "lead.title", "Intern"),
        "country": text("DE", "AT", "CH", "US", "FR"),
        "industry": text("fintech", "software", "retail"),
        "product": text("platform", "plat", "api"),
        "region": text("BY", "BE", "CA"),
        "postal_code": text("10115", "80331", "94105"),
        "language": text("de", "fr", "en"),
        "website": text("example.com", "uni.edu"),
        "email": text("a@x.edu", "b@gmail.com", "c@acme.com"),
        "email_domain": text("x.edu", "gmail.com", "acme.com"),
        "free_mail": rng.random() < 0.3,
        "company": text("Acme", "Analytical Engines Ltd", "Globex Corporation"),
        "employees": rng.choice([0, 1, 199, 200, 499, 500, 1000, 4999, 5000, 12000]),
        "source": text("web", "partner", "event"),
        "stage": text("mql", "sql"),
        "score": rng.randint(0, 100),
    }


@pytest.mark.parametrize("seed", range(4))
def test_top_level_variables_give_every_rule_the_value_the_lead_map_gives(seed: int) -> None:
    rng = random.Random(seed)
    conditions = rng.sample(CONDITIONS, rng.randint(3, len(CONDITIONS)))
    routing = ruleset(conditions)
    assert routing.fast is not None
    for _ in range(500):
        lead = generated_lead(rng)
        nested = routing.nested_values(lead)
        assert routing.values(lead) == nested, lead
        first = [r for r, v in zip(routing.spec.rules, nested, strict=True) if v is True][:1]
        assert [routing.first_match(lead)] == (first or [None])


def test_a_rule_failing_at_run_time_does_not_match_and_the_others_still_do() -> None:
    routing = ruleset(["100 / (lead.score - 42) > 1", "lead.country == 'DE'"])
    assert routing.fast is not None
    lead = {**SAMPLE_FACTS, "score": 42}
    assert routing.values(lead) == [False, True]
    assert routing.first_match(lead) is routing.spec.rules[1]
    assert routing.first_match({**lead, "score": 43}) is routing.spec.rules[0]


def test_a_lead_without_a_field_a_rule_names_falls_back_to_the_lead_map() -> None:
    routing = ruleset(["lead.country == 'DE'", "lead.score > 10"])
    lead = {k: v for k, v in SAMPLE_FACTS.items() if k != "country"}
    assert routing.values(lead) == routing.nested_values(lead) == [False, True]


@pytest.mark.parametrize(
    ("condition", "on_empty"),
    [
        ("has(lead.country) && lead.country == 'DE'", False),  # has() needs the map
        ("[1, 2].exists(lead, lead > 1)", True),  # a macro variable named lead
        ("size(lead) > 100", False),  # the whole map
    ],
)
def test_rules_using_lead_other_than_as_lead_dot_field_keep_the_lead_map(
    condition: str, on_empty: bool
) -> None:
    routing = ruleset([condition, "lead.employees >= 200"])
    assert routing.fast is None
    assert routing.values(EMPTY_FACTS) == [on_empty, False]
    assert routing.values(SAMPLE_FACTS)[1] is True
