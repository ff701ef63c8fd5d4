"""The SLA monitor's API over a real database: policies co-signed (marketing and sales), the open
clocks by time left, a lead's history, breaches, attainment and acknowledgement; the CLI beside."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from services.api import create_app
from services.cli import app
from services.settings import load_settings
from services.sla_monitor.handlers import SlaHandler
from services.sla_monitor.models import SlaClock
from services.sla_monitor.settings import sla_config
from services.sla_monitor.sweep import Sweeper
from shared.db import make_engine, make_sessions
from shared.ids import new_id
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.routing import add_lead
from tests.support.sla import POLICIES, activate, outcome, routed, staged, types

PEOPLE = [
    {"name": "maria", "key": "k_maria", "roles": ["approver:marketing"]},
    {"name": "sam", "key": "k_sam", "roles": ["approver:sales"]},
    {"name": "olga", "key": "k_olga", "roles": ["ops"]},
    {"name": "pat", "key": "k_pat", "roles": []},
]


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer k_{name}"}


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


async def _cosign(client: httpx.AsyncClient, text: str = POLICIES) -> int:
    proposed = await client.post("/v1/sla/policies", json={"content": text}, headers=as_("pat"))
    assert proposed.status_code == 201, proposed.text
    version = int(proposed.json()["version"])
    digest = hashlib.sha256(text.encode()).hexdigest()
    for who, side in (("maria", "marketing"), ("sam", "sales")):
        body = {"side": side, "content_hash": digest}
        signed = await client.post(
            f"/v1/sla/policies/{version}/approvals", json=body, headers=as_(who)
        )
        assert signed.status_code == 201, signed.text
    live = await client.post(f"/v1/sla/policies/{version}/activate", headers=as_("pat"))
    assert live.status_code == 200, live.text
    return version


async def test_policies_are_validated_cosigned_and_announced(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    bad = POLICIES.replace("notify: [manager]", "notify: [managers]", 1)
    refused = await client.post("/v1/sla/policies", json={"content": bad}, headers=as_("pat"))
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["field"] == "content"
    assert any("no contact group 'managers'" in e for e in problem["errors"])
    checked = await client.post(
        "/v1/sla/policies/validate", json={"content": POLICIES}, headers=as_("pat")
    )
    assert checked.status_code == 200, checked.text
    version = await _cosign(client)
    unsigned = await client.post("/v1/sla/policies", json={"content": POLICIES + "\n"},
                                 headers=as_("pat"))  # fmt: skip
    not_yet = await client.post(
        f"/v1/sla/policies/{unsigned.json()['version']}/activate", headers=as_("pat")
    )
    assert not_yet.status_code == 409
    async with runtime.sessions() as session:
        [announced] = await staged(session, prefix="sla_policies.")
    assert announced.data.version == version  # type: ignore[attr-defined]
    assert announced.data.approvers == {"marketing": "maria", "sales": "sam"}  # type: ignore[attr-defined]


async def _clocks(runtime: Runtime, count: int, now: datetime) -> list[UUID]:
    """``count`` leads routed a minute apart from ``now`` (the first has the least time left)."""
    handler = SlaHandler(sla_config(runtime.settings))
    lead_ids = []
    for n in range(count):
        async with runtime.sessions.begin() as session:
            lead_id = await add_lead(session, stage="sql")
            event = routed(lead_id, new_id(), now + timedelta(minutes=n),
                           email=f"rep{n % 2}@example.com")  # fmt: skip
            await handler(event, session=session, now=now)
        lead_ids.append(lead_id)
    return lead_ids


async def test_open_clocks_by_time_left_with_filters(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _cosign(client)
    now = datetime.now(UTC)
    lead_ids = await _clocks(runtime, 3, now)
    listed = await client.get("/v1/sla/clocks", headers=as_("pat"))
    assert listed.status_code == 200, listed.text
    assert [c["lead_id"] for c in listed.json()] == [str(i) for i in lead_ids]
    lefts = [c["time_left_s"] for c in listed.json()]
    assert lefts == sorted(lefts) and 3500 < lefts[0] <= 3600
    mine = await client.get("/v1/sla/clocks?owner=rep1@example.com", headers=as_("pat"))
    assert [c["lead_id"] for c in mine.json()] == [str(lead_ids[1])]
    unauthorised = await client.get("/v1/sla/clocks")
    assert unauthorised.status_code == 401
    [history] = (await client.get(f"/v1/sla/leads/{lead_ids[0]}/clocks", headers=as_("pat"))).json()
    assert history["state"] == "open" and [t["step"] for t in history["tiers"]] == [
        "warning", "breach", "escalate", "escalate",
    ]  # fmt: skip


async def test_open_clocks_by_where_they_stand(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await _cosign(client)
    now = datetime.now(UTC)
    [fresh] = await _clocks(runtime, 1, now)
    [warned] = await _clocks(runtime, 1, now - timedelta(minutes=45))  # 50 % passed
    [late] = await _clocks(runtime, 1, now - timedelta(minutes=70))  # the deadline passed
    await Sweeper(runtime.sessions, sla_config(runtime.settings), clock=lambda: now).catch_up()

    async def standing(name: str) -> list[str]:
        found = await client.get(f"/v1/sla/clocks?standing={name}", headers=as_("pat"))
        assert found.status_code == 200, found.text
        return [c["lead_id"] for c in found.json()]

    assert await standing("on_track") == [str(fresh)]
    assert await standing("warned") == [str(warned)]
    assert await standing("breached") == [str(late)]
    [shown] = (await client.get(f"/v1/sla/leads/{late}/clocks", headers=as_("pat"))).json()
    assert shown["standing"] == "breached"
    clock_id = shown["id"]
    acked = await client.post(
        f"/v1/sla/clocks/{clock_id}/acknowledge", json={}, headers=as_("olga")
    )
    assert acked.status_code == 200, acked.text
    assert await standing("acknowledged") == [str(late)]
    refused = await client.get("/v1/sla/clocks?standing=late", headers=as_("pat"))
    assert refused.status_code == 422


async def test_acknowledging_needs_a_role_and_an_open_clock(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _cosign(client)
    [lead_id] = await _clocks(runtime, 1, datetime.now(UTC))
    [clock] = (await client.get("/v1/sla/clocks", headers=as_("pat"))).json()
    url = f"/v1/sla/clocks/{clock['id']}/acknowledge"
    refused = await client.post(url, json={}, headers=as_("pat"))
    assert refused.status_code == 403 and "ops or manager" in refused.json()["detail"]
    done = await client.post(url, json={"note": "calling now"}, headers=as_("olga"))
    assert done.status_code == 200, done.text
    assert done.json()["acknowledged_by"] == "olga"
    again = await client.post(url, json={}, headers={"Authorization": "Bearer sk_test"})
    assert again.status_code == 200 and again.json()["acknowledged_by"] == "olga"
    missing = await client.post(f"/v1/sla/clocks/{new_id()}/acknowledge", json={},
                                headers=as_("olga"))  # fmt: skip
    assert missing.status_code == 404 and missing.json()["field"] == "clock_id"
    bad = await client.post(url, json={"note": "x" * 501}, headers=as_("olga"))
    assert bad.status_code == 422
    async with runtime.sessions() as session:
        assert types(await staged(session, lead_id=lead_id)).count("sla.acknowledged") == 1
    async with runtime.sessions.begin() as session:
        handler = SlaHandler(sla_config(runtime.settings))
        now = datetime.now(UTC)
        await handler(outcome(lead_id, "responded", now), session=session, now=now)
    closed = await client.post(url, json={}, headers=as_("olga"))
    assert closed.status_code == 409


async def test_breaches_and_attainment_of_a_period(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await _cosign(client)
    start = datetime.now(UTC) - timedelta(hours=5)
    lead_ids = await _clocks(runtime, 4, start)
    handler = SlaHandler(sla_config(runtime.settings))
    async with runtime.sessions.begin() as session:  # two answered in time, 10 and 30 minutes
        for lead_id, after in ((lead_ids[0], 10), (lead_ids[1], 31)):
            at = start + timedelta(minutes=after)
            await handler(outcome(lead_id, "responded", at), session=session, now=at)
        await session.execute(update(SlaClock).values(team="inbound"))
    await Sweeper(runtime.sessions, sla_config(runtime.settings)).catch_up()  # two breach
    breached = await client.get("/v1/sla/breaches", headers=as_("pat"))
    assert sorted(c["lead_id"] for c in breached.json()) == sorted(str(i) for i in lead_ids[2:])
    by_team = await client.get("/v1/sla/attainment?by=team", headers=as_("pat"))
    assert by_team.status_code == 200, by_team.text
    [line] = by_team.json()
    assert (line["group"], line["clocks"], line["met_in_time"]) == ("inbound", 4, 2)
    assert line["attainment_pct"] == 50.0
    assert (line["owner_p50_s"], line["owner_p90_s"]) == (600.0, 1800.0)
    assert line["system_p50_s"] is not None
    naive = await client.get("/v1/sla/breaches?since=2026-01-01T00:00:00", headers=as_("pat"))
    assert naive.status_code == 422 and naive.json()["field"] == "since"


def test_the_cli_validates_shows_clocks_and_acknowledges(tmp_path: Path) -> None:
    env = {"LEADFLOW_DB__URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    run("db", "upgrade")
    policies = tmp_path / "sla.yaml"
    policies.write_text(POLICIES)
    assert json.loads(run("sla-policies", "validate", str(policies), "--json"))["policies"] == [
        "hot"
    ]
    policies.write_text(POLICIES.replace("within: 1h", "within: 1 hour"))
    refused = runner.invoke(app, ["sla-policies", "validate", str(policies)], env=env)
    assert refused.exit_code != 0 and "not a duration" in refused.output
    lead_id = asyncio.run(_one_clock(env["LEADFLOW_DB__URL"]))
    [clock] = json.loads(run("sla", "clocks", "--json"))
    assert clock["lead_id"] == str(lead_id) and clock["state"] == "open"
    assert run("sla", "acknowledge", clock["id"], "--as", "olga").strip() == "acknowledged"
    again = run("sla", "acknowledge", clock["id"], "--as", "bo").strip()
    assert again == "already acknowledged by olga"
    [shown] = json.loads(run("sla", "history", str(lead_id), "--json"))
    assert shown["acknowledged_by"] == "olga"
    missing = runner.invoke(app, ["sla", "acknowledge", str(new_id()), "--as", "olga"], env=env)
    assert missing.exit_code != 0 and "no open SLA clock" in missing.output


async def _one_clock(url: str) -> UUID:
    settings = sla_config(load_settings(db={"url": url}))
    engine = make_engine(settings.db)
    sessions = make_sessions(engine)
    try:
        now = datetime.now(UTC)
        async with sessions.begin() as session:
            await activate(session, settings, now)
            lead_id = await add_lead(session, stage="sql")
            await SlaHandler(settings)(routed(lead_id, new_id(), now), session=session, now=now)
        return lead_id
    finally:
        await engine.dispose()
