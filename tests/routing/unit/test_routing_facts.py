"""What routing conditions see of a lead: every field present, aliases, later answers winning."""

from __future__ import annotations

from typing import Any

import pytest

from services.routing.facts import EMPTY_FACTS, account_domain, routing_facts

FIELDS = [
    "title",
    "country",
    "industry",
    "product",
    "region",
    "postal_code",
    "language",
    "website",
    "email",
    "email_domain",
    "free_mail",
    "company",
    "employees",
    "source",
    "stage",
    "score",
]


class Row:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def test_an_unknown_lead_has_every_field_empty() -> None:
    assert list(EMPTY_FACTS) == FIELDS
    assert EMPTY_FACTS == {
        **dict.fromkeys(FIELDS, ""),
        "free_mail": False,
        "employees": 0,
        "score": 0,
    }


@pytest.mark.parametrize(
    ("submissions", "expected"),
    [
        ([{"state": "by", "zip": "80331", "lang": "DE-at"}], {"region": "BY", "language": "de"}),
        ([{"custom": {"country": " de ", "company_size": "1.5e3"}}], {"country": "DE"}),
        ([{"country": "FR"}, {"country": "de"}], {"country": "DE"}),  # the later answer wins
        ([{"country": "FR"}, {"country": None}], {"country": "FR"}),  # None is no answer
        ([{"custom": {"industry": "Retail"}, "industry": "FinTech"}], {"industry": "fintech"}),
        ([{"region": "ca", "province": "on"}], {"region": "CA"}),  # the field before aliases
        ([{"employees": "many", "product": " API"}], {"employees": 0, "product": "api"}),
        ([{"employees": -3, "url": "https://www.acme.com/x"}], {"employees": 0}),
    ],
)
def test_submissions_merge_with_aliases_and_normalised_text(
    submissions: list[dict[str, Any]], expected: dict[str, Any]
) -> None:
    facts = routing_facts(Row(), submissions)
    assert list(facts) == FIELDS
    assert {k: facts[k] for k in expected} == expected


def test_the_lead_row_gives_email_company_source_stage_and_score() -> None:
    row = Row(email="Ada@Example.COM", company="Analytical", source="web", stage="mql", score=70)
    facts = routing_facts(row, [{"postcode": "10115", "custom": {"employees": 250.7}}])
    assert facts["email"] == "ada@example.com" and facts["email_domain"] == "example.com"
    assert (facts["company"], facts["source"], facts["stage"], facts["score"]) == (
        "Analytical",
        "web",
        "mql",
        70,
    )
    assert facts["postal_code"] == "10115" and facts["employees"] == 250
    assert facts["free_mail"] is False and account_domain(facts) == "example.com"
    free = routing_facts(Row(email="bob@gmail.com"))
    assert free["free_mail"] is True and account_domain(free) == ""
