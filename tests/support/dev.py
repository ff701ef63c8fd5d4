"""`leadflow dev` as a process, the way a user starts it: a free loopback port, a data dir of
its own, no LEADFLOW_* setting from the caller's environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shared.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_dev(data_dir: Path) -> Iterator[tuple[str, str]]:
    """`leadflow dev` on a free loopback port: its base URL and its secret key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    command = [sys.executable, "-m", "services", "dev", "--port", str(port)]
    data_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}"
    with (data_dir / "dev.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "--data-dir", str(data_dir)], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            wait_ready(base, process)
            yield base, (data_dir / "secret-key").read_text().strip()
        finally:
            process.terminate()
            process.wait(timeout=30)


def wait_ready(base: str, process: subprocess.Popen[bytes], within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("leadflow dev exited before it was ready")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("leadflow dev did not become ready")


def alive(pid: int) -> bool:
    """Whether a process (a child the command started: its broker) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
