"""A background task waits out outages itself; one that ends anyway (a bug) leaves a process that
no longer does its job: ``/readyz`` says so, and ``serve`` stops so that it can be restarted."""

from __future__ import annotations

import asyncio

import httpx

from shared.broker import free_port
from shared.health import health_app
from shared.runtime import Runtime
from shared.serve import serve
from tests.support.common import Database, eventually, make_settings


async def _broken() -> None:
    raise RuntimeError("a bug")


async def _done() -> None:
    return None


async def test_a_task_that_ends_makes_readyz_fail_naming_it(db: Database) -> None:
    runtime = Runtime.create(make_settings(db))
    app = health_app("test", runtime)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service"
        ) as client:
            assert (await client.get("/readyz")).status_code == 200
            runtime.spawn(_broken(), name="sweeper")
            runtime.spawn(_done(), name="relay")
            await eventually(lambda: len(runtime.stopped) == 2)
            response = await client.get("/readyz")
    finally:
        await runtime.close()
    assert response.status_code == 503
    assert response.json()["checks"]["tasks"] == "stopped: sweeper (RuntimeError), relay (returned)"
    assert response.json()["checks"]["database"] == "ok"


async def test_serve_stops_with_exit_code_1_when_a_task_spawned_later_ends(db: Database) -> None:
    """Tasks spawned after the server started (intake's writers start on the first post)."""
    runtime = Runtime.create(make_settings(db))
    port = free_port()
    serving = asyncio.create_task(serve(runtime, health_app("test", runtime), port=port))
    async with httpx.AsyncClient() as client:

        async def up() -> bool:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(up)
        runtime.spawn(_broken(), name="intake-writer-0")
        assert await asyncio.wait_for(serving, 30) == 1
