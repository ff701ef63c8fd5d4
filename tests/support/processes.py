"""``leadflow`` commands as OS processes, for e2e tests: their environment from a test's
settings, started, awaited until ``/readyz`` answers 200, stopped by SIGTERM (exit 0 expected),
each logging to a file of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.config import Settings

READY_WITHIN_S = 60.0


def environment(settings: Settings, **variables: str) -> dict[str, str]:
    """The machine's environment without its ``LEADFLOW_…`` variables, plus those that point a
    process at the test's database, broker and topics, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        {
            "LEADFLOW_DB__URL": settings.db.url,
            "LEADFLOW_KAFKA__BOOTSTRAP_SERVERS": str(settings.kafka.bootstrap_servers),
            "LEADFLOW_KAFKA__IDEMPOTENCE": "false",
            "LEADFLOW_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "LEADFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
            "LEADFLOW_TOPICS__PREFIX": settings.topics.prefix,
            "LEADFLOW_AUTH__SECRET_KEYS": '["sk_test"]',
        }
    )
    env.update(variables)
    return env


@dataclass
class Process:
    command: str
    url: str
    log: Path
    process: asyncio.subprocess.Process

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@asynccontextmanager
async def running(
    command: str, env: dict[str, str], *, port: int, logs: Path, name: str | None = None
) -> AsyncIterator[Process]:
    """``leadflow COMMAND`` listening on ``port``, ready; stopped (SIGTERM, exit 0) on leaving."""
    log = logs / f"{name or command}.log"
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services",
            command,
            env=env,
            stdout=output,
            stderr=output,
        )
    started = Process(command, f"http://127.0.0.1:{port}", log, process)
    try:
        await _ready(started)
        yield started
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        assert code == 0, f"{log.name} exited {code}:\n{started.tail()}"


async def _ready(process: Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_WITHIN_S
    async with httpx.AsyncClient(timeout=2) as client:
        while loop.time() < deadline:
            assert process.process.returncode is None, f"exited:\n{process.tail()}"
            try:
                if (await client.get(f"{process.url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{process.log.name}: not ready within {READY_WITHIN_S}s")
