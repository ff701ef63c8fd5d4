"""The routing API: secret key required, bad input named by field, nothing half-applied."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.api import create_app
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

AUTH = {"Authorization": "Bearer sk_test"}


@pytest.fixture
async def client(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime.create(make_settings(db))
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client
    finally:
        await runtime.close()


async def test_the_directory_needs_the_secret_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/owners")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/v1/teams", json={"name": "x"}, headers=wrong)).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@co.com", "name": "A", "time_zone": "Mars/Base"}, "time_zone"),
        ({"email": "a@co.com", "name": "A", "working_hours": "mon 17:00-09:00"}, "working_hours"),
        ({"email": "a@co.com", "name": "A", "weight": 0}, "weight"),
        ({"email": "a@co.com", "name": "A", "teams": ["nope"]}, "teams"),
        ({"email": "a@co.com", "name": "A", "away_until": "2030-01-01T00:00:00"}, "away_until"),
    ],
)
async def test_a_bad_rep_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: dict, field: str
) -> None:
    response = await client.post("/v1/owners", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    assert (await client.get("/v1/owners", headers=AUTH)).json() == []


async def test_routing_rules_naming_an_unknown_team_or_bad_cel_are_refused(
    client: httpx.AsyncClient,
) -> None:
    assert (
        await client.post("/v1/teams", json={"name": "inside"}, headers=AUTH)
    ).status_code == 200
    unknown = {"content": "name: t\ndefault_queue: nowhere\n"}
    response = await client.post("/v1/routing/rulesets", json=unknown, headers=AUTH)
    assert response.status_code == 422 and "nowhere" in response.json()["detail"]
    bad = {
        "content": "name: t\ndefault_queue: inside\n"
        "rules:\n  - {id: a, when: 'lead.', team: inside}\n"
    }
    response = await client.post("/v1/routing/rulesets", json=bad, headers=AUTH)
    assert response.status_code == 422 and response.json()["field"] == "content"
    good = {"content": "name: t\ndefault_queue: inside\n"}
    response = await client.post("/v1/routing/rulesets", json=good, headers=AUTH)
    assert response.status_code == 201 and response.json()["version"] == 1
    listed = (await client.get("/v1/routing/rulesets", headers=AUTH)).json()
    assert [(r["version"], r["status"]) for r in listed] == [(1, "proposed")]


async def test_an_import_with_one_bad_row_applies_nothing(client: httpx.AsyncClient) -> None:
    csv = "email,name,weight\nok@co.com,Ok,1\nbad@co.com,Bad,-3\n"
    headers = {**AUTH, "Content-Type": "text/csv"}
    response = await client.post("/v1/owners/import", content=csv, headers=headers)
    assert response.status_code == 422 and "row 3, weight" in response.text
    assert (await client.get("/v1/owners", headers=AUTH)).json() == []
