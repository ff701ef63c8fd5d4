"""Schemathesis against the whole OpenAPI document of a running `leadflow dev`, with its secret key.

The test suite runs it bounded, with a fixed seed (tests/composition/integration/
test_openapi_fuzz.py); `make fuzz` runs it longer: ``python -m tests.support.fuzz --examples 300``.
The checks and the warnings that fail a run are in schemathesis.toml at the repository's root.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.dev import ROOT, running_dev

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


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
