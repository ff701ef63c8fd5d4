"""Ruleset versions over a real database: proposing, co-signing, activating, through the API."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from services.api import create_app
from shared.cosign.models import CosignedVersion
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

DEFAULT = (Path(__file__).parents[3] / "rules" / "default.yaml").read_text()
PEOPLE = [
    {"name": "maria", "key": "k_maria", "roles": ["approver:marketing"]},
    {"name": "sam", "key": "k_sam", "roles": ["approver:sales"]},
    {"name": "alex", "key": "k_alex", "roles": ["approver:marketing", "approver:sales"]},
    {"name": "pat", "key": "k_pat", "roles": []},
]


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k_{name}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(
        make_settings(db, auth={"secret_keys": ["sk_test"], "principals": PEOPLE})
    )
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def propose(client: httpx.AsyncClient, text: str = DEFAULT, who: str = "pat") -> dict:
    response = await client.post("/v1/rulesets", json={"content": text}, headers=as_(who))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def sign(
    client: httpx.AsyncClient, version: int, who: str, side: str, text: str = DEFAULT
) -> httpx.Response:
    body = {"side": side, "content_hash": sha(text)}
    return await client.post(f"/v1/rulesets/{version}/approvals", json=body, headers=as_(who))


async def test_a_version_goes_live_only_with_both_sides(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    proposed = await propose(client)
    assert proposed["status"] == "proposed" and proposed["proposed_by"] == "pat"
    assert proposed["content_hash"] == sha(DEFAULT)
    version = proposed["version"]

    refused = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("pat"))
    assert refused.status_code == 409
    assert "lacks the approval of marketing and sales" in refused.json()["detail"]

    assert (await sign(client, version, "maria", "marketing")).status_code == 201
    refused = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("pat"))
    assert refused.status_code == 409 and "lacks the approval of sales" in refused.json()["detail"]

    assert (await sign(client, version, "sam", "sales")).status_code == 201
    live = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("sam"))
    assert live.status_code == 200, live.text
    assert live.json()["status"] == "active" and live.json()["activated_by"] == "sam"
    assert [a["approver"] for a in live.json()["approvals"]] == ["maria", "sam"]

    async with runtime.sessions() as session:
        staged = (await session.scalars(select(OutboxMessage))).all()
    [event] = [json.loads(m.payload) for m in staged if m.type == "ruleset.activated"]
    assert event["ruleset"] == proposed["label"]
    assert event["data"]["approvers"] == {"marketing": "maria", "sales": "sam"}


async def test_one_person_cannot_sign_for_both_sides(client: httpx.AsyncClient) -> None:
    version = (await propose(client))["version"]
    assert (await sign(client, version, "alex", "marketing")).status_code == 201
    twice = await sign(client, version, "alex", "sales")
    assert twice.status_code == 409
    assert twice.json()["field"] == "side" and "one person, one side" in twice.json()["detail"]
    refused = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("alex"))
    assert refused.status_code == 409


@pytest.mark.parametrize(
    ("who", "side", "status"),
    [("pat", "marketing", 403), ("maria", "sales", 403), ("sam", "marketing", 403)],
)
async def test_approving_needs_the_role_of_that_side(
    client: httpx.AsyncClient, who: str, side: str, status: int
) -> None:
    version = (await propose(client))["version"]
    response = await sign(client, version, who, side)
    assert response.status_code == status
    assert response.json()["field"] == "side"


async def test_a_side_signs_once(client: httpx.AsyncClient) -> None:
    version = (await propose(client))["version"]
    assert (await sign(client, version, "maria", "marketing")).status_code == 201
    again = await sign(client, version, "alex", "marketing")
    assert again.status_code == 409 and "maria already approved" in again.json()["detail"]


async def test_a_signature_on_other_content_is_refused(client: httpx.AsyncClient) -> None:
    version = (await propose(client))["version"]
    stale = await sign(client, version, "maria", "marketing", text=DEFAULT + "# edited\n")
    assert stale.status_code == 409 and stale.json()["field"] == "content_hash"


async def test_content_changed_after_approval_is_refused_at_activation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    version = (await propose(client))["version"]
    assert (await sign(client, version, "maria", "marketing")).status_code == 201
    assert (await sign(client, version, "sam", "sales")).status_code == 201
    async with runtime.sessions.begin() as session:  # behind the service's back
        edited = DEFAULT.replace("points: 20", "points: 90", 1)
        await session.execute(
            update(CosignedVersion)
            .where(CosignedVersion.kind == "qualification", CosignedVersion.version == version)
            .values(content=edited)
        )
    refused = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("sam"))
    assert refused.status_code == 409 and "content was altered" in refused.json()["detail"]
    async with runtime.sessions() as session:
        row = await session.scalar(
            select(CosignedVersion).where(
                CosignedVersion.kind == "qualification", CosignedVersion.version == version
            )
        )
        assert row is not None and row.status == "proposed"


async def test_activating_retires_the_previous_version_and_an_active_one_is_final(
    client: httpx.AsyncClient,
) -> None:
    first = (await propose(client))["version"]
    second_text = DEFAULT.replace("min_engagement: 15", "min_engagement: 25")
    second = (await propose(client, second_text))["version"]
    for version, text in ((first, DEFAULT), (second, second_text)):
        assert (await sign(client, version, "maria", "marketing", text)).status_code == 201
        assert (await sign(client, version, "sam", "sales", text)).status_code == 201
        response = await client.post(f"/v1/rulesets/{version}/activate", headers=as_("sam"))
        assert response.status_code == 200
    history = (await client.get("/v1/rulesets", headers=as_("pat"))).json()
    assert [(h["version"], h["status"]) for h in history] == [
        (second, "active"),
        (first, "retired"),
    ]
    again = await sign(client, first, "alex", "marketing")
    assert again.status_code == 409 and "is retired" in again.json()["detail"]

    url = f"/v1/rulesets/{second}/diff?against={first}"
    diff = (await client.get(url, headers=as_("pat"))).json()
    assert diff["changed"] == ["stages.mql"] and diff["added"] == diff["removed"] == []
    assert "-    min_engagement: 15\n+    min_engagement: 25" in diff["diff"]


async def test_an_invalid_ruleset_is_refused_naming_rule_line_and_reason(
    client: httpx.AsyncClient,
) -> None:
    broken = DEFAULT.replace("lead.company != ''", "lead.company !=")
    line = next(n for n, text in enumerate(DEFAULT.splitlines(), 1) if "lead.company != ''" in text)
    for path in ("/v1/rulesets/validate", "/v1/rulesets"):
        response = await client.post(path, json={"content": broken}, headers=as_("pat"))
        assert response.status_code == 422
        body = response.json()
        assert body["field"] == "content"
        [problem] = body["problems"]
        assert problem["rule"] == "company-given" and problem["line"] == line
        assert problem["reason"].startswith("does not parse")
    assert (await client.get("/v1/rulesets", headers=as_("pat"))).json() == []


async def test_the_same_content_is_not_proposed_twice(client: httpx.AsyncClient) -> None:
    first = await propose(client)
    again = await client.post("/v1/rulesets", json={"content": DEFAULT}, headers=as_("pat"))
    assert again.status_code == 409 and f"version {first['version']}" in again.json()["detail"]


@pytest.mark.parametrize(("headers", "status"), [({}, 401), (as_("nobody"), 403)])
async def test_ruleset_endpoints_need_a_key(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/v1/rulesets", json={"content": DEFAULT}, headers=headers)
    assert response.status_code == status
