"""Schemathesis hooks for the fuzz runs (``SCHEMATHESIS_HOOKS``, set by tests/support/fuzz.py).

A positive case's ``Idempotency-Key`` is made unique. Hypothesis draws few distinct short keys,
so generated cases reused one key with another body, which the API rightly refuses with 422
(the IETF idempotency-key draft): every valid outcome and activity looked refused, and the
"schema validation mismatch" warning named those operations. A key of the right shape drawn by
a negative case is left as it was, and so is an invalid one.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import schemathesis
from schemathesis import GenerationMode

from services.intake.forms.api import IDEMPOTENCY_KEY

KEY = "Idempotency-Key"


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    headers = case.headers or {}
    key = headers.get(KEY)
    meta = case.meta
    positive = meta is not None and meta.generation.mode == GenerationMode.POSITIVE
    if positive and isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        headers[KEY] = f"fuzz-{uuid4().hex}"
