"""`leadflow broker`: the embedded broker as a process of its own, for the services run as
separate processes on one machine (deploy/README.md); SIGTERM stops it and its tansu child."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.broker import free_port
from tests.support.dev import alive

pytestmark = pytest.mark.e2e


def _leadflow_broker(port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    return subprocess.Popen(
        [sys.executable, "-m", "services", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
    )


def _announced(process: subprocess.Popen[str]) -> str:
    """Read its output up to the line that says it listens (the test's timeout bounds it)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("embedded broker listening on"):
            return line
    raise AssertionError("it ended without listening:\n" + "".join(seen))


def _children(parent: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout
    rows = (line.split() for line in out.splitlines()[1:])
    return [int(pid) for pid, ppid in rows if int(ppid) == parent]


async def _round_trip(bootstrap_servers: str) -> bytes | None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait("broker-command", b"hello")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "broker-command", bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return (await consumer.getone()).value
    finally:
        await consumer.stop()


async def test_broker_serves_kafka_until_sigterm_then_stops_its_child(tmp_path: Path) -> None:
    port = free_port()
    process = _leadflow_broker(port, tmp_path)
    try:
        line = _announced(process)
        assert f"LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:{port}" in line
        children = _children(process.pid)
        assert len(children) == 1, children  # tansu
        assert await _round_trip(f"127.0.0.1:{port}") == b"hello"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert not alive(children[0]), "the broker outlived leadflow broker"


def test_broker_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _leadflow_broker(port, tmp_path)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 1, output
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "embedded broker listening" not in output
