"""Google Ads lead-form webhook over a real database (SQLite and PostgreSQL), through the app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from services.api import create_app
from services.intake.models import PlatformLead
from shared.models import Inquiry, Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

KEY = "g00gle-k3y"
FORM_KEY = "form-777-key"
URL = "/v1/ingest/google-ads"
SAMPLE_LEAD_ID = "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz-0123456789"

# Google's sample body as its documentation shows it — with the trailing comma after the last
# column — and the key spelt `Google_key`, as in the "send test data" variants.
SAMPLE = """{
  "lead_id": "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz-0123456789",
  "user_column_data": [
    {
      "column_name": "Full Name",
      "string_value": "FirstName LastName",
      "column_id": "FULL_NAME"
    },
    {
      "column_name": "User Phone",
      "string_value": "1-650-555-0123",
      "column_id": "PHONE_NUMBER"
    },
    {
      "column_name": "User Email",
      "string_value": "test@example.com",
      "column_id": "EMAIL"
    },
  ],
  "api_version": "1.0",
  "form_id": 123456789,
  "campaign_id": 123456789,
  "Google_key": "%s",
  "is_test": true,
  "gcl_id": "gcl-id-value",
  "adgroup_id": 0,
  "creative_id": 0
}"""


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    platforms = {
        "google_ads_key": KEY,
        "google_ads_forms": {
            "777": {
                "google_key": FORM_KEY,
                "fields": {"What is your budget?": "custom.budget", "JOB_TITLE": "ignore"},
                "source": "google-ads-demo",
            }
        },
    }
    runtime = Runtime.create(make_settings(db, platforms=platforms))
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
        yield client


def lead_body(key: str = KEY, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "lead_id": f"lead-{uuid4().hex}",
        "user_column_data": [
            {"column_id": "FULL_NAME", "string_value": "Grace Hopper"},
            {"column_id": "EMAIL", "string_value": f"grace.{uuid4().hex[:8]}@example.com"},
            {"column_id": "COMPANY_NAME", "string_value": "US Navy"},
        ],
        "api_version": "1.0",
        "form_id": 42,
        "campaign_id": 7,
        "google_key": key,
        "is_test": False,
        "adgroup_id": 11,
        "creative_id": 12,
    }
    body.update(overrides)
    return body


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_googles_sample_with_trailing_comma_and_Google_key_is_a_flagged_test_lead(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = SAMPLE % KEY
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)  # the sample really is not strict JSON

    response = await client.post(URL, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 200, response.text
    answer = response.json()
    async with runtime.sessions() as session:
        lead = await session.get(Lead, UUID(answer["lead_id"]))
        assert lead is not None
        assert (lead.email, lead.phone) == ("test@example.com", "+16505550123")
        assert (lead.first_name, lead.last_name) == ("FirstName", "LastName")
        assert lead.source == "google-ads"
        assert lead.is_test is True
        [event] = (await session.scalars(select(OutboxMessage))).all()
        record = await session.get(PlatformLead, ("google-ads", SAMPLE_LEAD_ID))
    data = json.loads(event.payload)["data"]
    assert event.type == "lead.received"
    assert data["is_test"] is True and data["source"] == "google-ads"
    assert record is not None and record.is_test and record.status == "stored"
    assert record.detail["campaign_id"] == 123456789 and "Google_key" not in record.detail
    async with runtime.sessions() as session:
        inquiry = await session.scalar(select(Inquiry))
    assert inquiry is not None and inquiry.raw["user_column_data"][0]["column_id"] == "FULL_NAME"
    assert "Google_key" not in inquiry.raw and KEY not in json.dumps(inquiry.raw)


async def test_a_retried_lead_id_gets_the_first_answer_and_no_new_inquiry(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = SAMPLE % KEY
    first = await client.post(URL, content=body)
    again = await client.post(URL, content=body)

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await count(runtime, Inquiry) == 1
    assert await count(runtime, OutboxMessage) == 1


async def test_concurrent_retries_store_one_inquiry(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    body = lead_body()
    answers = await asyncio.gather(*(client.post(URL, json=body) for _ in range(5)))

    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["inquiry_id"] for r in answers}) == 1
    assert await count(runtime, Inquiry) == 1
    assert await count(runtime, OutboxMessage) == 1


@pytest.mark.parametrize(
    ("key_field", "key", "status"),
    [("google_key", "wrong", 403), ("Google_key", KEY + "x", 403), ("google_key", "", 401)],
)
async def test_a_wrong_or_missing_key_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, runtime: Runtime, key_field: str, key: str, status: int
) -> None:
    body = lead_body()
    del body["google_key"]
    if key:
        body[key_field] = key

    response = await client.post(URL, json=body)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == (key_field if key else "google_key")
    assert KEY not in response.text
    assert await count(runtime, Inquiry) == 0
    assert await count(runtime, PlatformLead) == 0


async def test_a_form_with_its_own_key_and_mapping(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    columns = [
        {"column_id": "EMAIL", "string_value": "ada@example.com"},
        {"column_id": "JOB_TITLE", "string_value": "Countess"},
        {"column_id": "QUESTION_1", "column_name": "What is your budget?", "string_value": "10k"},
        {"column_id": "QUESTION_2", "column_name": "Team size", "string_value": "11-50"},
        {"column_id": "CITY", "string_value": "London"},
    ]
    global_key = await client.post(URL, json=lead_body(form_id=777, user_column_data=columns))
    assert global_key.status_code == 403  # the form has its own key

    response = await client.post(
        URL, json=lead_body(FORM_KEY, form_id=777, user_column_data=columns)
    )

    assert response.status_code == 200, response.text
    async with runtime.sessions() as session:
        lead = await session.get(Lead, UUID(response.json()["lead_id"]))
        inquiry = await session.scalar(select(Inquiry))
    assert lead is not None and lead.source == "google-ads-demo"
    assert lead.is_test is False
    assert inquiry is not None
    assert "title" not in inquiry.submission  # mapped to ignore
    custom = inquiry.submission["custom"]
    assert custom == {"budget": "10k", "Team size": "11-50", "city": "London"}


async def test_unknown_top_level_fields_are_ignored(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    response = await client.post(
        URL, json=lead_body(new_thing_from_2027={"x": 1}, lead_stage="qualified")
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("overrides", "field", "status"),
    [
        ({"user_column_data": [{"column_id": "FULL_NAME", "string_value": "X Y"}]}, None, 422),
        ({"user_column_data": "EMAIL=x"}, "user_column_data", 422),
        ({"lead_id": ""}, "lead_id", 422),
    ],
)
async def test_an_unusable_lead_is_a_problem_naming_the_field(
    client: httpx.AsyncClient, runtime: Runtime, overrides: dict, field: str | None, status: int
) -> None:
    response = await client.post(URL, json=lead_body(**overrides))
    assert response.status_code == status
    assert response.json()["field"] == (field or "user_column_data")
    assert await count(runtime, Inquiry) == 0


async def test_not_json_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"lead_id=1&google_key=x")
    assert response.status_code == 400 and response.json()["field"] == "body"


async def test_a_test_lead_does_not_make_a_real_lead_a_test(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    real = lead_body()
    email = real["user_column_data"][1]["string_value"]  # type: ignore[index]
    first = (await client.post(URL, json=real)).json()
    test = lead_body(is_test=True, user_column_data=real["user_column_data"])

    second = (await client.post(URL, json=test)).json()

    assert second["lead_id"] == first["lead_id"] and second["new_lead"] is False
    async with runtime.sessions() as session:
        lead = await session.scalar(select(Lead).where(Lead.email == email))
        events = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq))).all()
    assert lead is not None and lead.is_test is False
    assert [json.loads(e.payload)["data"]["is_test"] for e in events] == [False, True]


async def test_an_unset_platform_answers_not_configured_and_not_retryable(db: Database) -> None:
    """A platform retries 5xx; an integration nobody set up must not look like an outage."""
    runtime = Runtime.create(make_settings(db))
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            answers = {
                "google-ads": await client.post(URL, json=lead_body()),
                "meta notification": await client.post("/v1/ingest/meta", json={"entry": []}),
                "meta handshake": await client.get(
                    "/v1/ingest/meta",
                    params={"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "t"},
                ),
            }
        for name, answer in answers.items():
            assert answer.status_code == 404, name
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["title"] == "Not configured"
            assert problem["retryable"] is False
            assert "LEADFLOW_PLATFORMS__" in problem["detail"]
        assert await count(runtime, PlatformLead) == 0
    finally:
        await runtime.close()
