"""Production mode: one process per service (`leadflow intake`, `leadflow scoring`), real HTTP,
the real broker and PostgreSQL, as docker-compose.yml runs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.scoring.main import activate_sample_rules
from shared.broker import EmbeddedBroker, free_port
from shared.config import Settings
from shared.runtime import Runtime
from tests.support.common import Database, make_settings

pytestmark = pytest.mark.e2e


def _environment(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(settings_env)
    return env


def _wait(url: str, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the service exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {within}s")


@pytest.fixture
def services(pg: Database, broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = make_settings(pg, broker)
    intake_port, scoring_port = free_port(), free_port()
    env = _environment(
        {
            "LEADFLOW_DB__URL": settings.db.url,
            "LEADFLOW_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "LEADFLOW_KAFKA__IDEMPOTENCE": "false",
            "LEADFLOW_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "LEADFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
            "LEADFLOW_TOPICS__PREFIX": settings.topics.prefix,
            "LEADFLOW_AUTH__SECRET_KEYS": '["sk_test"]',
            "LEADFLOW_HTTP__INTAKE_PORT": str(intake_port),
            "LEADFLOW_HTTP__SCORING_PORT": str(scoring_port),
        }
    )
    created = subprocess.run(
        [sys.executable, "-m", "services", "keys", "create", "--kind", "public"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    asyncio.run(_activate_sample_rules(settings))  # without live rules nothing is scored
    public_key = created.stdout.strip()
    assert public_key and "\n" not in public_key  # the key alone on stdout
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-m", "services", name],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{name}.log").open("wb"),
        )
        for name in ("intake", "scoring")
    }
    try:
        _wait(f"http://127.0.0.1:{intake_port}/readyz", processes["intake"])
        _wait(f"http://127.0.0.1:{scoring_port}/readyz", processes["scoring"])
        yield f"http://127.0.0.1:{intake_port}", public_key
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            code = process.wait(timeout=30)
            assert code == 0, (tmp_path / f"{name}.log").read_text()[-3000:]


async def _activate_sample_rules(settings: Settings) -> None:
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
    finally:
        await runtime.close()


def test_separate_intake_and_scoring_processes_score_a_posted_lead(
    services: tuple[str, str],
) -> None:
    base, public_key = services
    posted = httpx.post(
        f"{base}/v1/leads", json={"email": "grace@example.com"}, headers={"X-API-Key": public_key}
    )
    assert posted.status_code == 202, posted.text
    lead_url = f"{base}{posted.headers['location']}"
    deadline = time.monotonic() + 30
    shown: dict[str, object] = {}
    while time.monotonic() < deadline:
        shown = httpx.get(lead_url, headers={"Authorization": "Bearer sk_test"}).json()
        if shown.get("scored_at"):
            break
        time.sleep(0.05)
    assert shown.get("scored_at"), shown
    assert [h["kind"] for h in shown["history"]][:2] == ["lead.received", "lead.scored"]
