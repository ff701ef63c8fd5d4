"""Rate limits counted in Redis (``intake.rate_limit_storage``), on both databases: two apps,
each with its own limiter, share one limit; a Redis that goes away lets posts through, warned
about once, counted, and the limits hold again once it is back. The Redis password is never
logged. (Two ``leadflow intake`` processes: tests/e2e/test_replicas.py.)"""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from services.api import create_app
from services.intake.keys.guard import Guard
from shared.models import Inquiry
from tests.support.common import Database
from tests.support.intake import client_for, count, intake, new_key
from tests.support.redis_server import RedisServer

LOGGER = "services.intake.keys.ratelimits"


def _unchecked() -> float:
    sample = "leadflow_intake_rate_limit_unchecked_total"
    return REGISTRY.get_sample_value(sample, {"limit": "ip"}) or 0.0


async def test_two_apps_sharing_redis_enforce_one_limit(db: Database, redis: RedisServer) -> None:
    limits = {"rate_limit_per_ip": "4/minute", "rate_limit_storage": redis.url}
    async with intake(db, intake=limits) as runtime:
        key = await new_key(runtime)
        apps = [create_app(runtime), create_app(runtime)]  # a limiter each, as two replicas
        answers = []
        for n in range(8):
            async with client_for(
                runtime, app=apps[n % 2], address="10.1.0.1", headers={"X-API-Key": key}
            ) as client:
                answers.append(await client.post("/v1/leads", json={"email": f"s{n}@example.com"}))
        assert [a.status_code for a in answers] == [202] * 4 + [429] * 4
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers[4:])
        assert await count(runtime, Inquiry) == 4
        for app in apps:
            await _guard(app).limits.aclose()


async def test_redis_away_lets_posts_through_warned_once_then_limits_hold_again(
    db: Database, redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {
        "rate_limit_per_ip": "2/minute",
        "rate_limit_storage": redis.url,
        "rate_limit_storage_retry_s": 0,  # every post tries Redis again: still one warning
    }
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with intake(db, intake=limits) as runtime:
        key = await new_key(runtime)
        app = create_app(runtime)

        async def post(n: int) -> int:
            async with client_for(
                runtime, app=app, address="10.2.0.1", headers={"X-API-Key": key}
            ) as client:
                response = await client.post("/v1/leads", json={"email": f"o{n}@example.com"})
            return response.status_code

        assert [await post(n) for n in range(3)] == [202, 202, 429]
        redis.stop()
        before = _unchecked()
        assert [await post(n) for n in range(3, 8)] == [202] * 5  # fail open
        assert _unchecked() - before == 5
        warnings = [r for r in caplog.records if r.name == LOGGER]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "unreachable" in warnings[0].getMessage()
        assert f"127.0.0.1:{redis.port}" in warnings[0].getMessage()

        redis.start()  # empty: it kept nothing
        assert [await post(n) for n in range(8, 11)] == [202, 202, 429]
        messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert len(messages) == 2 and "answers again" in messages[1], messages
        assert redis.password not in caplog.text
        assert all("***@127.0.0.1" in m for m in messages)
        await _guard(app).limits.aclose()


def _guard(app: object) -> Guard:
    guard = app.state.guard  # type: ignore[attr-defined]
    assert isinstance(guard, Guard)
    return guard


async def test_a_redis_that_never_answers_costs_one_timeout_per_retry(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # takes the connection, answers nothing until the client leaves
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = {
        "rate_limit_per_ip": "1/minute",
        "rate_limit_storage": f"redis://:hidden-pw@127.0.0.1:{port}/0",
        "rate_limit_storage_timeout_s": 0.2,
        "rate_limit_storage_retry_s": 60,
    }
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        async with intake(db, intake=limits) as runtime:
            key = await new_key(runtime)
            app = create_app(runtime)
            async with client_for(
                runtime, app=app, address="10.3.0.1", headers={"X-API-Key": key}
            ) as client:
                started = asyncio.get_running_loop().time()
                first = await client.post("/v1/leads", json={"email": "t0@example.com"})
                waited = asyncio.get_running_loop().time() - started
                tried = connections
                later = [
                    await client.post("/v1/leads", json={"email": f"t{n}@example.com"})
                    for n in range(1, 4)
                ]
            assert [r.status_code for r in [first, *later]] == [202] * 4
            assert waited >= 0.2 and tried >= 1  # the first post waited out the timeout…
            assert connections == tried  # …the next ones did not try Redis again yet
            [warning] = [r.getMessage() for r in caplog.records if r.name == LOGGER]
            assert "TimeoutError" in warning and "hidden-pw" not in caplog.text
            await _guard(app).limits.aclose()
    finally:
        server.close()
