"""Schemathesis against the whole OpenAPI document of a running `leadflow dev`, with its secret key.

The test suite runs it bounded, with a fixed seed (tests/composition/integration/
test_openapi_fuzz.py); `make fuzz` runs it longer: ``python -m tests.support.fuzz --examples 300``.
The checks and the warnings that fail a run are in schemathesis.toml at the repository's root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shared.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


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
            _wait_ready(base, process)
            yield base, (data_dir / "secret-key").read_text().strip()
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_ready(base: str, process: subprocess.Popen[bytes], within: float = 90) -> None:
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


def fuzz(base: str, key: str, *, examples: int, seed: int) -> subprocess.CompletedProcess[str]:
    """One schemathesis run, every phase; its exit status is 0 when no check failed."""
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(ROOT / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
    ]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=300, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_dev(Path(folder) / "data") as dev:
        print(f"schemathesis: {args.examples} examples, seed {args.seed}", flush=True)
        run = fuzz(*dev, examples=args.examples, seed=args.seed)
    print(run.stdout, run.stderr, sep="\n")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
