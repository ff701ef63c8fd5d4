"""Intake replicas that share their rate limits: two ``leadflow intake`` processes counting in
one Redis (a server of the test's own) enforce one limit between them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.intake.keys.store import create_key
from shared.broker import EmbeddedBroker, free_port
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.processes import environment, running
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.e2e
LIMIT = 6


async def test_two_intake_processes_sharing_redis_enforce_one_limit(
    pg: Database, broker: EmbeddedBroker, redis: RedisServer, tmp_path: Path
) -> None:
    settings = make_settings(pg, broker)
    runtime = Runtime.create(settings)
    try:
        async with runtime.sessions.begin() as session:
            key, _ = await create_key(session, kind="public", now=datetime.now(UTC))
    finally:
        await runtime.close()
    ports = [free_port(), free_port()]
    envs = [
        environment(
            settings,
            LEADFLOW_HTTP__INTAKE_PORT=str(port),
            LEADFLOW_INTAKE__RATE_LIMIT_PER_IP=f"{LIMIT}/minute",
            LEADFLOW_INTAKE__RATE_LIMIT_PER_KEY="",  # the address's limit alone decides
            LEADFLOW_INTAKE__RATE_LIMIT_STORAGE=redis.url,
        )
        for port in ports
    ]
    async with (
        running("intake", envs[0], port=ports[0], logs=tmp_path, name="intake-1") as first,
        running("intake", envs[1], port=ports[1], logs=tmp_path, name="intake-2") as second,
        httpx.AsyncClient(headers={"X-API-Key": key}, timeout=30) as client,
    ):
        # 2 × LIMIT posts from one address (127.0.0.1), at once, half to each process.
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{(first, second)[n % 2].url}/v1/leads", json={"email": f"r{n}@example.com"}
                )
                for n in range(2 * LIMIT)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * LIMIT + [429] * LIMIT, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 429):
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["content-type"] == "application/problem+json"
    for process in (first, second):
        assert redis.password not in process.tail()
