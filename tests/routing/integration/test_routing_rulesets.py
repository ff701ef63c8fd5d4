"""Routing rules versions over a real database: co-signed like qualification rulesets, through
the API and ``leadflow routing-rules``; the live version is the one routing uses and reports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from services.api import create_app
from services.cli import app
from services.routing.assign import route_lead
from shared.cosign.models import CosignedVersion
from shared.models import OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.routing import NOW, add_lead, rep, team

PEOPLE = [
    {"name": "maria", "key": "k_maria", "roles": ["approver:marketing"]},
    {"name": "sam", "key": "k_sam", "roles": ["approver:sales"]},
    {"name": "alex", "key": "k_alex", "roles": ["approver:marketing", "approver:sales"]},
    {"name": "pat", "key": "k_pat", "roles": []},
]
FIRST = "name: first\ndefault_queue: inside\n"
SECOND = """name: second
default_queue: inside
rules:
  - {id: germany, when: 'lead.country == "DE"', team: dach}
"""


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k_{name}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(
        make_settings(db, auth={"secret_keys": ["sk_test"], "principals": PEOPLE})
    )
    async with runtime.sessions.begin() as s:
        await team(s, "inside")
        await team(s, "dach")
        await rep(s, "ann@co.com", "inside")
    yield runtime
    await runtime.close()


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def propose(client: httpx.AsyncClient, text: str = FIRST) -> int:
    response = await client.post("/v1/routing/rulesets", json={"content": text}, headers=as_("pat"))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "proposed" and response.json()["proposed_by"] == "pat"
    return int(response.json()["version"])


async def sign(
    client: httpx.AsyncClient, version: int, who: str, side: str, text: str = FIRST
) -> httpx.Response:
    body = {"side": side, "content_hash": sha(text)}
    url = f"/v1/routing/rulesets/{version}/approvals"
    return await client.post(url, json=body, headers=as_(who))


async def activate(client: httpx.AsyncClient, version: int) -> httpx.Response:
    return await client.post(f"/v1/routing/rulesets/{version}/activate", headers=as_("pat"))


async def staged(runtime: Runtime, kind: str) -> list[dict]:
    async with runtime.sessions() as s:
        rows = await s.scalars(select(OutboxMessage.payload).where(OutboxMessage.type == kind))
        return [json.loads(p) for p in rows]


async def test_routing_rules_go_live_only_with_both_sides_and_emit_an_event(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    version = await propose(client)
    refused = await activate(client, version)
    assert refused.status_code == 409
    assert "lacks the approval of marketing and sales" in refused.json()["detail"]
    assert (await sign(client, version, "maria", "marketing")).status_code == 201
    refused = await activate(client, version)
    assert refused.status_code == 409 and "lacks the approval of sales" in refused.json()["detail"]
    assert await staged(runtime, "routing_rules.activated") == []

    assert (await sign(client, version, "sam", "sales")).status_code == 201
    live = await activate(client, version)
    assert live.status_code == 200, live.text
    assert live.json()["status"] == "active" and live.json()["activated_by"] == "pat"
    [event] = await staged(runtime, "routing_rules.activated")
    assert event["data"]["version"] == version and event["data"].get("previous") is None
    assert event["data"]["approvers"] == {"marketing": "maria", "sales": "sam"}
    assert event["data"]["content_hash"] == sha(FIRST)

    async with runtime.sessions.begin() as s:
        lead_id = await add_lead(s)
        decision = await route_lead(s, lead_id, now=NOW, settings=runtime.settings)
    assert decision.outcome == "routed"
    [routed] = await staged(runtime, "lead.routed")
    assert routed["data"]["ruleset_version"] == version


async def test_one_person_cannot_sign_for_both_sides(client: httpx.AsyncClient) -> None:
    version = await propose(client)
    assert (await sign(client, version, "alex", "marketing")).status_code == 201
    twice = await sign(client, version, "alex", "sales")
    assert twice.status_code == 409
    assert twice.json()["field"] == "side" and "one person, one side" in twice.json()["detail"]
    assert (await activate(client, version)).status_code == 409


@pytest.mark.parametrize(("who", "side"), [("pat", "marketing"), ("maria", "sales")])
async def test_approving_needs_the_role_of_that_side(
    client: httpx.AsyncClient, who: str, side: str
) -> None:
    response = await sign(client, await propose(client), who, side)
    assert response.status_code == 403 and response.json()["field"] == "side"


async def test_a_signature_on_other_content_is_refused(client: httpx.AsyncClient) -> None:
    version = await propose(client)
    response = await sign(client, version, "maria", "marketing", text=SECOND)
    assert response.status_code == 409 and "not the content signed" in response.json()["detail"]


async def test_content_changed_after_approval_is_refused_at_activation(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    version = await propose(client)
    assert (await sign(client, version, "maria", "marketing")).status_code == 201
    assert (await sign(client, version, "sam", "sales")).status_code == 201
    async with runtime.sessions.begin() as s:  # edited behind the service's back
        await s.execute(
            update(CosignedVersion)
            .where(CosignedVersion.kind == "routing", CosignedVersion.version == version)
            .values(content=SECOND)
        )
    refused = await activate(client, version)
    assert refused.status_code == 409 and "content was altered" in refused.json()["detail"]
    assert await staged(runtime, "routing_rules.activated") == []


async def test_a_live_version_is_final_and_the_next_one_retires_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    first = await propose(client)
    for who, side in (("maria", "marketing"), ("sam", "sales")):
        assert (await sign(client, first, who, side)).status_code == 201
    assert (await activate(client, first)).status_code == 200
    assert (await activate(client, first)).status_code == 409
    late = await sign(client, first, "alex", "sales")
    assert late.status_code == 409 and f"version {first} is active" in late.json()["detail"]

    again = await client.post("/v1/routing/rulesets", json={"content": FIRST}, headers=as_("pat"))
    assert again.status_code == 409 and "exact content" in again.json()["detail"]
    second = await propose(client, SECOND)
    diff = (await client.get(f"/v1/routing/rulesets/{second}/diff", headers=as_("pat"))).json()
    assert diff["added"] == ["germany"] and diff["from"] == first and "+rules:" in diff["diff"]
    for who, side in (("maria", "marketing"), ("sam", "sales")):
        assert (await sign(client, second, who, side, text=SECOND)).status_code == 201
    assert (await activate(client, second)).status_code == 200

    listed = (await client.get("/v1/routing/rulesets", headers=as_("pat"))).json()
    assert [(r["version"], r["status"]) for r in listed] == [
        (second, "active"),
        (first, "retired"),
    ]
    events = await staged(runtime, "routing_rules.activated")
    assert [e["data"].get("previous") for e in events] == [None, first]
    shown = (await client.get(f"/v1/routing/rulesets/{first}", headers=as_("pat"))).json()
    assert shown["content"] == FIRST and shown["retired_at"] is not None


def test_the_cli_proposes_signs_and_activates(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # noqa: ANN001
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    monkeypatch.setenv("LEADFLOW_AUTH__PRINCIPALS", json.dumps(PEOPLE))
    cli = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = cli.invoke(app, ["routing-rules", *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result.stdout + result.stderr

    run_owners = cli.invoke(app, ["owners", "team", "inside"])
    assert run_owners.exit_code == 0, run_owners.stdout
    path = tmp_path / "routing.yaml"
    path.write_text(FIRST)
    assert json.loads(run("validate", str(path), "--json"))["content_hash"] == sha(FIRST)
    version = str(json.loads(run("propose", str(path), "--as", "pat", "--json"))["version"])
    digest = sha(FIRST)
    assert "lacks the approval" in run("activate", version, "--as", "pat", code=1)
    run("approve", version, "--as", "maria", "--side", "marketing", "--hash", digest)
    twice = run("approve", version, "--as", "maria", "--side", "sales", "--hash", digest, code=1)
    assert "does not hold the role approver:sales" in twice
    run("approve", version, "--as", "sam", "--side", "sales", "--hash", digest)
    live = json.loads(run("activate", version, "--as", "pat", "--json"))
    assert live["status"] == "active"
    assert [a["approver"] for a in live["approvals"]] == ["maria", "sam"]
    [row] = json.loads(run("history", "--json"))
    assert row["status"] == "active" and row["activated_by"] == "pat"
