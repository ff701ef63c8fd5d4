"""The types of request parameters and body fields whose real range is narrower than Python's.

Each type says in the OpenAPI document what the API accepts, and refuses the rest with a 422
problem naming the field, so that no input reaches a database column or a date computation that
cannot hold it:

- a co-signed version is a positive 32-bit integer (the column's type);
- days, months and instants are written as text (pydantic would also read ``0`` as the Unix
  epoch), in the years 1900 to 2999, far enough from the calendar's ends for every default
  window and month arithmetic the reports do;
- an amount of money is a decimal text with at most two decimals, or a JSON number, rounded to
  cents as CRMs store currency (a JavaScript client's ``0.1 + 0.2`` is 0.30, not a 422).
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Field, WithJsonSchema

MAX_VERSION = 2**31 - 1
FIRST_YEAR, LAST_YEAR = 1900, 2999
YEAR = r"(19|2\d)\d{2}"
DAY_PATTERN = rf"^{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"
MONTH_PATTERN = rf"^{YEAR}-(0[1-9]|1[0-2])$"
INSTANT_PATTERN = rf"^{YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]"

Version = Annotated[int, Field(ge=1, le=MAX_VERSION, description="The version number")]


def _not_a_flag(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


Integer = Annotated[int, BeforeValidator(_not_a_flag)]
"""An integer as JSON or text writes it (a CSV's ``3`` too), never a boolean: pydantic would read
``true`` as 1."""


def _text(kind: str, pattern: str) -> Any:
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and compiled.match(value):
            return value
        if isinstance(value, date) and FIRST_YEAR <= value.year <= LAST_YEAR:
            return value  # already parsed (a default, or a model built in code)
        raise ValueError(f"{kind}, in the years {FIRST_YEAR}–{LAST_YEAR}")

    return BeforeValidator(check)


Day = Annotated[
    date,
    _text("a day is written YYYY-MM-DD", DAY_PATTERN),
    Field(json_schema_extra={"pattern": DAY_PATTERN}),
]
Month = Annotated[
    str,
    Field(pattern=MONTH_PATTERN, description="YYYY-MM"),
]
Instant = Annotated[
    AwareDatetime,
    _text("a time is written as RFC 3339 with its offset (2026-05-04T09:30:00Z)", INSTANT_PATTERN),
    Field(json_schema_extra={"pattern": INSTANT_PATTERN}),
]


AMOUNT_LIMIT = 10**16
"""Amounts are below 10¹⁶: sixteen digits and two decimals, the column's ``Numeric(18, 2)``."""
AMOUNT_PATTERN = r"^\d{1,16}(\.\d{1,2})?$"
CENT = Decimal("0.01")


def _amount(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an amount, not true or false")
    if isinstance(value, str):
        if not re.match(AMOUNT_PATTERN, value):
            raise ValueError("an amount is written with digits and at most two decimals (12000.50)")
        return Decimal(value)
    if isinstance(value, float):
        if not (math.isfinite(value) and 0 <= value < AMOUNT_LIMIT):
            raise ValueError(f"an amount is 0 or more and less than {AMOUNT_LIMIT}")
        value = Decimal(repr(value)).quantize(CENT, ROUND_HALF_UP)
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(ge=0, lt=AMOUNT_LIMIT),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "exclusiveMaximum": AMOUNT_LIMIT},
                {"type": "string", "pattern": AMOUNT_PATTERN},
            ]
        }
    ),
]
"""An amount of money as a CRM sends it: ``"12000.50"``, or ``12000.5`` (rounded to cents)."""
