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
from pathlib import Path

import httpx

from tests.support.dev import ROOT, running_dev

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def mismatched(stdout: str) -> set[str]:
    """The operations a run's "Schema validation mismatch" warning names."""
    named: set[str] = set()
    lines = iter(stdout.splitlines())
    for line in lines:
        if line.startswith("Schema validation mismatch:"):
            for entry in lines:
                if entry.startswith("  - "):
                    named.add(entry[4:].strip())
                elif named:
                    break
    return named


SEEDED_CRM_ID = "FUZZ-SEED-1"


def seed_leads(base: str, key: str) -> dict[str, str]:
    """A lead for each way the outcome and activity routes find one (by id, by email, by CRM id),
    as the variables schemathesis.toml's ``parameters`` read: without them, every outcome and
    activity the fuzzer posts is answered 404 or 422 and none is ever accepted. Three leads, not
    one: an outcome posted by id or email may carry another CRM id, which re-keys its lead."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:

        def lead(email: str) -> str:
            posted = client.post("/v1/leads", json={"email": email, "company": "Northwind"})
            posted.raise_for_status()
            return str(posted.json()["lead_id"])

        by_id = lead("fuzz.by-id@northwind.example")
        by_email = "fuzz.by-email@northwind.example"
        lead(by_email)
        by_crm_id = lead("fuzz.by-crm-id@northwind.example")
        keyed = {"outcome": "responded", "crm": "salesforce", "crm_id": SEEDED_CRM_ID}
        client.post(f"/v1/leads/{by_crm_id}/outcomes", json=keyed).raise_for_status()
    return {
        "LEADFLOW_FUZZ_LEAD_ID": by_id,
        "LEADFLOW_FUZZ_EMAIL": by_email,
        "LEADFLOW_FUZZ_CRM_ID": SEEDED_CRM_ID,
    }


def fuzz(base: str, key: str, *, examples: int, seed: int) -> subprocess.CompletedProcess[str]:
    """One schemathesis run, every phase, after ``seed_leads``; its exit status is 0 when no
    check failed."""
    seeded = seed_leads(base, key)
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
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **seeded, "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks"},
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
    if named := mismatched(run.stdout):
        print(f"schema validation mismatch: {sorted(named)}")
        return 1
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
