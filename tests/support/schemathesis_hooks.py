"""Schemathesis hooks for the fuzz runs (``SCHEMATHESIS_HOOKS``, set by tests/support/fuzz.py).

A positive case's ``Idempotency-Key`` is made unique. Hypothesis draws few distinct short keys,
so generated cases reused one key with another body, which the API rightly refuses with 422
(the IETF idempotency-key draft): every valid outcome and activity looked refused, and the
"schema validation mismatch" warning named those operations. A key of the right shape drawn by
a negative case is left as it was, and so is an invalid one.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

import schemathesis
from schemathesis import GenerationMode

KEY = "Idempotency-Key"
VALID_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers or {}
    key = headers.get(KEY)
    meta = case.meta
    positive = meta is not None and meta.generation.mode == GenerationMode.POSITIVE
    if positive and isinstance(key, str) and VALID_KEY.match(key):
        headers[KEY] = f"fuzz-{uuid4().hex}"
