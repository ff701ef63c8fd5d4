"""Schemathesis hooks for the fuzz runs (``SCHEMATHESIS_HOOKS``, set by tests/support/fuzz.py).

A positive case's retry keys, its ``Idempotency-Key`` header and a body's ``external_id``, are made
unique. Hypothesis draws few distinct short values, so generated cases reused one key with
another body, which the API rightly refuses with 422 (the IETF idempotency-key draft): every
valid outcome and activity looked refused, and the "schema validation mismatch" warning named
those operations. A key of the right shape drawn by a negative case is left as it was, and so is
an invalid one.

A positive outcome posted by CRM id keeps that CRM id: one in its body would re-key the seeded
lead (the latest CRM id wins), and every later case of the route would find no lead.

A positive activity's or outcome's ``occurred_at`` in the future becomes now: the API refuses a
time in the future (422), which no schema can state, and the document's years run to 2999, so
most generated times were refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import schemathesis
from schemathesis import GenerationMode

from services.intake.forms.api import IDEMPOTENCY_KEY

KEY = "Idempotency-Key"
BY_CRM_ID = "/by-crm-id/{crm_id}/"
REPORTS = ("/outcomes", "/activities")


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    headers = case.headers or {}
    key = headers.get(KEY)
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        headers[KEY] = f"fuzz-{uuid4().hex}"
    body, path = case.body, case.operation.path
    if not isinstance(body, dict) or not path.endswith(REPORTS):
        return
    if isinstance(body.get("external_id"), str):
        body["external_id"] = f"fuzz-{uuid4().hex}"
    if BY_CRM_ID in path and "crm_id" in body:
        body["crm_id"] = case.path_parameters["crm_id"]
    if isinstance(when := body.get("occurred_at"), str) and _in_the_future(when):
        body["occurred_at"] = datetime.now(UTC).isoformat()


def _in_the_future(when: str) -> bool:
    try:
        return datetime.fromisoformat(when) > datetime.now(UTC)
    except (ValueError, TypeError):  # not a time, or without an offset: left for the API
        return False
