"""The outcome body's document states the rules ``outcome_problems`` checks beyond field types
(a reason, an amount, a currency with its amount), and the two agree on every combination."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from services.intake.engagement.schemas import OUTCOMES, OutcomeIn, outcome_problems

BODIES = [
    {"outcome": outcome}
    | ({"reason": "no_budget"} if reason else {})
    | ({"amount": "1200.00"} if amount else {})
    | ({"currency": "EUR"} if currency else {})
    for outcome, reason, amount, currency in itertools.product(
        OUTCOMES, (False, True), (False, True), (False, True)
    )
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: "+".join(str(v) for v in b.values()))
def test_the_schema_accepts_what_the_route_accepts(body: dict[str, Any]) -> None:
    by_schema = jsonschema.Draft202012Validator(OutcomeIn.model_json_schema()).is_valid(body)
    by_route = not outcome_problems(OutcomeIn.model_validate(body), datetime.now(UTC))
    assert by_schema == by_route


def test_the_rules_refuse_some_bodies_and_accept_others() -> None:
    now = datetime.now(UTC)
    verdicts = {not outcome_problems(OutcomeIn.model_validate(b), now) for b in BODIES}
    assert verdicts == {True, False}
