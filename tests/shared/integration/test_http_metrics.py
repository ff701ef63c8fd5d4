"""``leadflow_http_request_duration_seconds``: every answer of every Leadflow app, by method,
route template and status class; intake's lead posts (answered ahead of the router) included.
Through the apps as served (ASGI), on both databases; the 5xx of a database outage on intake's
own PostgreSQL server."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.api import create_app
from shared.health import health_app
from shared.runtime import Runtime
from shared.web import new_app
from tests.support.common import Database, make_settings
from tests.support.intake import AUTH, client_for, intake, new_key
from tests.support.postgres_server import PostgresServer

METRIC = "leadflow_http_request_duration_seconds"


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value(f"{METRIC}_count", labels) or 0.0


def _sum(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value(f"{METRIC}_sum", labels) or 0.0


def _routes() -> set[str]:
    return {
        sample.labels["route"]
        for metric in REGISTRY.collect()
        if metric.name == METRIC
        for sample in metric.samples
    }


async def test_intake_answers_are_timed_by_route_template_and_status_class(db: Database) -> None:
    post, one = ("POST", "/v1/leads", "2xx"), ("GET", "/v1/leads/{lead_id}", "2xx")
    refused, unknown = ("POST", "/v1/leads", "4xx"), ("GET", "unmatched", "4xx")
    odd = ("other", "/v1/leads", "4xx")
    before = {labels: _count(*labels) for labels in (post, one, refused, unknown, odd)}
    post_time = _sum(*post)
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime) as client:
            body = {"email": f"{uuid4().hex[:8]}@example.com", "company": "Acme"}
            posted = await client.post("/v1/leads", json=body, headers={"X-API-Key": key})
            assert posted.status_code == 202, posted.text
            lead_id = posted.json()["lead_id"]
            read = await client.get(f"/v1/leads/{lead_id}", headers=AUTH)
            assert read.status_code == 200
            no_key = await client.post("/v1/leads", json=body)
            assert no_key.status_code == 401
            assert (await client.get(f"/v1/nothing/{lead_id}")).status_code == 404
            assert (await client.request("BREW", "/v1/leads")).status_code == 405
    after = {labels: _count(*labels) for labels in before}
    assert {labels: after[labels] - before[labels] for labels in before} == dict.fromkeys(
        before, 1.0
    )
    assert _sum(*post) > post_time
    assert not any(lead_id in route for route in _routes()), "a raw path became a label"


async def test_every_service_s_health_app_is_timed_and_shows_it_at_metrics(db: Database) -> None:
    runtime = Runtime.create(make_settings(db))
    try:
        app = health_app("Leadflow scoring", runtime)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://scoring") as client:
            before = _count("GET", "/healthz", "2xx")
            assert (await client.get("/healthz")).status_code == 200
            scraped = (await client.get("/metrics")).text
    finally:
        await runtime.close()
    assert _count("GET", "/healthz", "2xx") == before + 1
    line = f'{METRIC}_count{{method="GET",route="/healthz",status="2xx"}} {before + 1}'
    assert line in scraped.splitlines()


async def test_an_unexpected_error_is_a_5xx_of_its_route() -> None:
    app: FastAPI = new_app("Errors")

    @app.get("/broken/{part}")
    async def broken(part: str) -> None:
        raise RuntimeError(f"{part} is broken")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    before = _count("GET", "/broken/{part}", "5xx")
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/broken/wheel")).status_code == 500
    assert _count("GET", "/broken/{part}", "5xx") == before + 1


async def test_lead_posts_answered_503_in_a_database_outage_are_5xx(
    outage_db: Database, pg_server: PostgresServer
) -> None:
    failed, accepted = ("POST", "/v1/leads", "5xx"), ("POST", "/v1/leads", "2xx")
    before = _count(*failed), _count(*accepted)
    runtime = Runtime.create(make_settings(outage_db))
    try:
        transport = httpx.ASGITransport(app=create_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:

            async def post() -> int:
                body = {"email": f"{uuid4().hex[:8]}@example.com", "company": "Acme"}
                return (await client.post("/v1/leads", json=body, headers=AUTH)).status_code

            assert await post() == 202
            async with pg_server.refusing():
                assert [await post(), await post()] == [503, 503]
            await asyncio.to_thread(pg_server.start)
            assert await post() == 202
    finally:
        await runtime.close()
    assert (_count(*failed), _count(*accepted)) == (before[0] + 2, before[1] + 2)
