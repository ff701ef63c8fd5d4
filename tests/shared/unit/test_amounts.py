"""An amount of money: what the OpenAPI document says is accepted is exactly what is accepted,
and a JSON number is rounded to cents, as CRMs store currency."""

from __future__ import annotations

from decimal import Decimal

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from shared.params import Amount


class Deal(BaseModel):
    amount: Amount


SCHEMA = Deal.model_json_schema()["properties"]["amount"]


def accepted(value: object) -> Decimal | None:
    try:
        return Deal(amount=value).amount  # type: ignore[arg-type]
    except ValidationError:
        return None


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("12000.50", Decimal("12000.50")),
        ("0", Decimal("0")),
        ("9999999999999999.99", Decimal("9999999999999999.99")),
        (12000, Decimal("12000")),
        (12000.5, Decimal("12000.50")),
        (0.1 + 0.2, Decimal("0.30")),  # 0.30000000000000004, as JavaScript adds them
        (57 * 0.01, Decimal("0.57")),  # 0.5700000000000001
        (0.005, Decimal("0.01")),  # half a cent rounds up
        (1e-300, Decimal("0.00")),
    ],
)
def test_an_amount_is_kept_to_the_cent(sent: object, stored: Decimal) -> None:
    kept = accepted(sent)
    assert kept == stored
    assert kept is not None and kept.as_tuple().exponent in (0, -2)


@pytest.mark.parametrize(
    "sent",
    ["", "1e3", "-1", "12.345", "1,000.00", " 12", "12.", ".5", "10000000000000000", True, None]
    + [-0.001, -1, 1e16, 10**16, float("nan"), float("inf"), [], {}],
)
def test_what_is_not_an_amount_is_refused(sent: object) -> None:
    assert accepted(sent) is None


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=False, allow_infinity=False),
    st.from_regex(r"\A-?\d{0,18}(\.\d{0,4})?\Z"),
    st.text(max_size=20),
)


@given(json_values)
def test_the_document_and_the_validation_agree(value: object) -> None:
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(value) == (accepted(value) is not None)
