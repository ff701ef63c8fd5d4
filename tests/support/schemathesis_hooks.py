"""Schemathesis hooks for the fuzz runs (``SCHEMATHESIS_HOOKS``, set by tests/support/fuzz.py).

A positive case's retry keys, its ``Idempotency-Key`` header and a body's ``external_id``, are made
unique. Hypothesis draws few distinct short values, so generated cases reused one key with
another body, which the API rightly refuses with 422 (the IETF idempotency-key draft): every
valid outcome and activity looked refused, and the "schema validation mismatch" warning named
those operations. A key of the right shape drawn by a negative case is left as it was, and so is
an invalid one.

A positive outcome posted by CRM id keeps that CRM id: one in its body would re-key the seeded
lead (the latest CRM id wins), and every later case of the route would find no lead.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import schemathesis
from schemathesis import GenerationMode

from services.intake.forms.api import IDEMPOTENCY_KEY

KEY = "Idempotency-Key"


BY_CRM_ID = "/by-crm-id/{crm_id}/"


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return
    headers = case.headers or {}
    key = headers.get(KEY)
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        headers[KEY] = f"fuzz-{uuid4().hex}"
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("external_id"), str):
        body["external_id"] = f"fuzz-{uuid4().hex}"
    if BY_CRM_ID in case.operation.path and "crm_id" in body:
        body["crm_id"] = case.path_parameters["crm_id"]
