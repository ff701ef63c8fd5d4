"""A lead is never refused for a field it does not know (issue 20): a JSON body with a form
snippet's flat names is stored, its unknown fields kept in custom and named in the answer; a
strict key refuses them instead; the lead's view shows each inquiry's UTM, page, consent and
custom fields. Through the app, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from shared.models import Inquiry
from shared.runtime import Runtime
from tests.support.common import Database
from tests.support.intake import client_for, count, intake, new_key

AUTH = {"Authorization": "Bearer sk_test"}
SNIPPET = {
    "email": "grace@example.com",
    "name": "Grace Hopper",
    "utm_source": "newsletter",
    "utm_campaign": "spring",
    "message": "Please call after 3pm",
    "page_url": "https://www.example.com/pricing",
    "consent": "on",
    "consent_text": "I agree to be contacted.",
    "plan": {"seats": 40, "tier": "team"},
}


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    async with intake(db) as runtime:
        yield runtime


async def post(runtime: Runtime, body: dict[str, Any], **key: Any) -> httpx.Response:
    made = await new_key(runtime, **key)
    secret = key.get("kind") == "secret"
    headers = {"Authorization": f"Bearer {made}"} if secret else {"X-API-Key": made}
    async with client_for(runtime, headers=headers) as client:
        return await client.post("/v1/leads", json=body)


async def test_a_form_snippets_json_is_stored_with_its_unknown_fields_kept_and_named(
    runtime: Runtime,
) -> None:
    answer = await post(runtime, SNIPPET)
    assert answer.status_code == 202, answer.text
    assert answer.json()["kept_as_custom"] == ["message", "plan"]
    async with runtime.sessions() as session:
        inquiry = await session.scalar(select(Inquiry))
    assert inquiry is not None
    assert inquiry.raw == SNIPPET  # the body as posted, always
    stored = inquiry.submission
    assert stored["first_name"] == "Grace" and stored["last_name"] == "Hopper"
    assert stored["utm"] == {"source": "newsletter", "campaign": "spring"}
    assert stored["consent"]["flags"] == {"consent": True}
    assert stored["custom"] == {
        "message": "Please call after 3pm",
        "plan": '{"seats":40,"tier":"team"}',
    }

    async with client_for(runtime, headers=AUTH) as client:
        view = (await client.get(f"/v1/leads/{answer.json()['lead_id']}")).json()
    (shown,) = view["inquiries"]
    assert shown["utm"]["source"] == "newsletter" and shown["utm"]["campaign"] == "spring"
    assert shown["page_url"] == "https://www.example.com/pricing"
    assert shown["consent"] == {
        "text": "I agree to be contacted.",
        "flags": {"consent": True},
        "communications": [],
    }
    assert shown["custom"]["message"] == "Please call after 3pm"


async def test_a_known_field_of_the_wrong_type_is_still_refused_naming_it(
    runtime: Runtime,
) -> None:
    for body, field in (
        ({"email": "a@example.com", "utm_source": ["x"] * 3}, "utm_source"),
        ({"email": "a@example.com", "first_name": {"a": 1}}, "first_name"),
        ({"email": "a@example.com", "utm": "spring"}, "utm"),
    ):
        answer = await post(runtime, body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field
    assert await count(runtime, Inquiry) == 0


async def test_a_strict_key_refuses_unknown_fields_and_stores_nothing(runtime: Runtime) -> None:
    answer = await post(runtime, SNIPPET, kind="secret", strict=True)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["field"] == "message"
    assert [e["field"] for e in problem["errors"]] == ["message", "plan"]
    assert await count(runtime, Inquiry) == 0

    known = {k: v for k, v in SNIPPET.items() if k not in ("message", "plan")}
    accepted = await post(runtime, known, kind="secret", strict=True)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["kept_as_custom"] == []
