"""`leadflow dev` as a user runs it: one process, embedded broker, SQLite; Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.broker import EMBEDDED_PARTITIONS, free_port
from tests.support.dev import alive, wait_ready

pytestmark = pytest.mark.e2e


def _brokers_of(parent: int) -> dict[int, str]:
    """The embedded brokers that process ``parent`` started (other test runs may have theirs),
    each with the host:port it listens on."""
    command = ["ps", "-ww", "-eo", "pid,ppid,args"]  # -ww: whole command lines, not cut
    out = subprocess.run(command, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines()[1:]:
        pid, ppid, args = line.split(None, 2)
        if int(ppid) == parent and "tansu" in args and "broker" in args:
            found[int(pid)] = args.split("--listener-url tcp://", 1)[1].split()[0]
    return found


async def _partitions(bootstrap_servers: str) -> dict[str, int]:
    """Each Leadflow topic on the broker, with its number of partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await consumer.start()
    try:
        topics = {t for t in await consumer.topics() if t.startswith("leadflow.")}
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        await consumer.stop()


STOP_WITHIN_S = 30


def _output_within(process: subprocess.Popen[bytes], seconds: float) -> str:
    """What the process wrote by the time it ended; if it has not ended within ``seconds``, the
    test fails with what it wrote so far (its logs name the step that held it)."""
    try:
        return process.communicate(timeout=seconds)[0].decode()
    except subprocess.TimeoutExpired:
        for broker in _brokers_of(process.pid):  # in a session of its own: killed by name
            os.kill(broker, signal.SIGKILL)
        process.kill()
        output = process.communicate()[0].decode()
        pytest.fail(f"not stopped {seconds} s after Ctrl-C; it wrote:\n{output}")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_dev_runs_the_slice_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    command = [sys.executable, "-m", "services", "dev", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    if database == "postgresql":
        command += ["--database-url", request.getfixturevalue("pg").url]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
        key = (data_dir / "secret-key").read_text().strip()
        public = (data_dir / "public-key").read_text().strip()
        lead = {"email": "ada@example.com", "company": "AE"}
        assert httpx.post(f"{base}/v1/leads", json=lead).status_code == 401  # keys required
        posted = httpx.post(f"{base}/v1/leads", json=lead, headers={"X-API-Key": public})
        assert posted.status_code == 202
        lead_url = f"{base}{posted.headers['location']}"
        deadline = time.monotonic() + 15  # a deadline, not a latency target: see docs/benchmarks.md
        shown = {}
        while time.monotonic() < deadline:
            shown = httpx.get(lead_url, headers={"Authorization": f"Bearer {key}"}).json()
            if shown["score"] is not None:
                break
            time.sleep(0.05)
        assert shown["score"] == 30
        assert (data_dir / "leadflow.db").exists() == (database == "sqlite")
        brokers = _brokers_of(process.pid)
        assert len(brokers) == 1
        # The embedded broker's own number of partitions per topic (see shared.broker).
        partitions = asyncio.run(_partitions(*brokers.values()))
        assert {"leadflow.intake", "leadflow.lifecycle", "leadflow.sla"} <= set(partitions)
        assert set(partitions.values()) == {EMBEDDED_PARTITIONS}
    finally:
        process.send_signal(signal.SIGINT)
        output = _output_within(process, STOP_WITHIN_S)
    assert process.returncode == 0, output
    assert f"curl -s -X POST {base}/v1/leads" in output
    assert f"X-API-Key: {public}" in output
    # The banner lands in logs: it says where the secret key is and how to read it, not the key.
    assert key not in output
    assert f"Bearer $(cat {data_dir / 'secret-key'})" in output
    assert not any(alive(pid) for pid in brokers), "the embedded broker outlived dev"


def test_dev_refuses_a_bad_database_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services", "dev", "--database-url", "mysql://nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--database-url" in result.stderr
