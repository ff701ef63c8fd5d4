"""deploy/README.md's production steps, run as written: from a fresh PostgreSQL database to a
signed webhook at a CRM receiver, every service a process of its own (no containers).

The commands come from the page itself, from its fenced blocks marked ``<!-- steps: KIND -->``,
so the page and this test cannot drift apart:

- ``run``: shell steps, run by bash in the page's order (``set -euo pipefail``), in one folder
  holding a copy of the rules; what they export carries on to the later steps;
- ``site``: where the database, the broker, the public address and the CRM are — the one block
  the test replaces, with the same variables, by its own values (``_site``);
- ``services``: one long-running command a line, each started as a process of its own.

Besides the site's values the test sets only what a shared test machine needs (``_extras``): free
ports, loopback webhook targets allowed, faster consumer-group timeouts. Its broker is
``leadflow broker`` on a free port, as the page says to run it on one machine.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import shutil
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import orjson
import pytest
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

from shared.broker import free_port
from tests.support.common import admin, eventually
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "deploy" / "README.md"
BLOCK = re.compile(r"<!-- steps: (\w+) -->\n[ ]*```bash\n(.*?)\n[ ]*```\n", re.DOTALL)
EXPORT = re.compile(r"\b([A-Z][A-Z0-9_]*)=")
SERVICES = ("intake", "scoring", "webhooks", "sla-monitor", "analytics")
READY_WITHIN_S = 60.0
DELIVERED_WITHIN_S = 30.0


@dataclass(frozen=True)
class Block:
    kind: str
    text: str


def page_blocks() -> list[Block]:
    return [Block(kind, textwrap.dedent(body)) for kind, body in BLOCK.findall(PAGE.read_text())]


def _exported(block: Block) -> set[str]:
    """The variables a site block exports (``export A=… B=…`` lines)."""
    names: set[str] = set()
    for line in block.text.splitlines():
        command = line.split("#", 1)[0].strip()
        assert command.startswith("export "), f"a site block only exports: {line!r}"
        names |= set(EXPORT.findall(command))
    return names


def _commands(block: Block) -> list[list[str]]:
    lines = (line.split("#", 1)[0].strip() for line in block.text.splitlines())
    return [shlex.split(line) for line in lines if line]


def _port_variable(service: str) -> str:
    return f"LEADFLOW_HTTP__{service.upper().replace('-', '_')}_PORT"


def test_the_page_marks_its_steps() -> None:
    kinds = [block.kind for block in page_blocks()]
    assert kinds.count("site") == 1 and kinds.count("services") == 1, kinds
    assert set(kinds) == {"run", "site", "services"}, kinds
    assert kinds.index("site") < kinds.index("services"), kinds
    [services] = [block for block in page_blocks() if block.kind == "services"]
    assert _commands(services) == [["leadflow", name] for name in SERVICES]


@dataclass
class Machine:
    """The test's stand-ins for the site: a database, a broker, a folder, a CRM receiver."""

    folder: Path
    database_url: str
    broker_port: int
    crm: Receiver
    ports: dict[str, int]

    def site(self) -> dict[str, str]:
        """The values of the page's site block, for this machine."""
        return {
            "LEADFLOW_DB__URL": self.database_url,
            "LEADFLOW_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{self.broker_port}",
            # The embedded broker has no idempotent producer; one broker, one replica.
            "LEADFLOW_KAFKA__IDEMPOTENCE": "false",
            "LEADFLOW_KAFKA__REPLICATION_FACTOR": "1",
            "LEADFLOW_HTTP__PUBLIC_URL": f"http://127.0.0.1:{self.ports['intake']}",
            "CRM_URL": self.crm.url(),
        }

    def extras(self) -> dict[str, str]:
        """What a shared test machine needs besides: free ports, a loopback CRM, quick joins."""
        return {
            **{_port_variable(name): str(port) for name, port in self.ports.items()},
            "LEADFLOW_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
            "LEADFLOW_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "LEADFLOW_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
        }

    def environment(self) -> dict[str, str]:
        """A shell's environment with `leadflow` on the PATH and no LEADFLOW_… of the caller's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **self.site(), **self.extras()}


@pytest.fixture
async def fresh_database(postgres_url: str) -> AsyncIterator[str]:
    """An empty database of its own, no migration run: `leadflow db upgrade` is a step."""
    name = f"leadflow_steps_{uuid4().hex[:12]}"
    await admin(postgres_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Processes:
    """Long-running processes of the test, stopped with SIGTERM at the end, broker last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        self.running[name] = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=self.folder,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if name == "broker" else log,
            stderr=log,
        )
        log.close()

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    async def stop(self) -> dict[str, int]:
        codes = {}
        for name in sorted(self.running, key=lambda n: n == "broker"):  # the broker last
            process = self.running[name]
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            codes[name] = await asyncio.wait_for(process.wait(), 30)
        return codes


async def _bash(script: str, env: dict[str, str], folder: Path) -> str:
    """Run ``script`` as the page's reader would; its output (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        "set -euo pipefail\n" + script,
        env=env,
        cwd=folder,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
    assert process.returncode == 0, f"the page's steps failed:\n{script}\n---\n{output}"
    return output


async def _bash_keeping_environment(
    script: str, env: dict[str, str], folder: Path
) -> tuple[str, dict[str, str]]:
    """Run ``script``; its output and the environment it leaves behind (what it exported)."""
    dump = folder / ".environment"
    output = await _bash(f'{script}\nenv -0 > "{dump}"', env, folder)
    items = dump.read_bytes().decode().split("\0")
    pairs = (item.partition("=") for item in items if item)
    return output, {name: value for name, _, value in pairs}


def _subscription_secret(output: str) -> str:
    """The signing secret `leadflow subscriptions create` printed (shown once)."""
    [secret] = re.findall(r"^secret (whsec_\S+)", output, flags=re.MULTILINE)
    return secret


async def _listening(broker: asyncio.subprocess.Process) -> None:
    """Wait for `leadflow broker` to say it listens."""
    assert broker.stdout is not None
    while line := await broker.stdout.readline():
        if line.startswith(b"embedded broker listening on"):
            return
    raise AssertionError("leadflow broker ended without listening")


async def _ready(url: str, process: asyncio.subprocess.Process) -> bool:
    assert process.returncode is None, f"{url}: the service exited"
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code == 200
    except httpx.TransportError:
        return False


async def test_the_documented_production_steps_deliver_a_signed_webhook(
    fresh_database: str, tmp_path: Path
) -> None:
    assert shutil.which("leadflow", path=str(Path(sys.executable).parent)), "leadflow not installed"
    blocks = page_blocks()
    split = next(i for i, block in enumerate(blocks) if block.kind == "services")
    [site] = [block for block in blocks if block.kind == "site"]
    before = "\n".join(block.text for block in blocks[:split] if block.kind == "run")
    after = "\n".join(block.text for block in blocks[split + 1 :] if block.kind == "run")

    (tmp_path / "rules").mkdir()
    shutil.copy(ROOT / "rules" / "default.yaml", tmp_path / "rules" / "default.yaml")
    processes = Processes(tmp_path)
    async with Receiver() as crm:
        machine = Machine(
            tmp_path, fresh_database, free_port(), crm, {name: free_port() for name in SERVICES}
        )
        assert _exported(site) == set(machine.site()), "the page's site block and the test's"
        env = machine.environment()
        try:
            await processes.start(
                "broker", ["leadflow", "broker", "--port", str(machine.broker_port)], env
            )
            await asyncio.wait_for(_listening(processes.running["broker"]), READY_WITHIN_S)

            # .env, the schema, the co-signed rules, the form key, the CRM's subscription.
            output, env = await _bash_keeping_environment(before, env, tmp_path)
            for argv in _commands(blocks[split]):
                await processes.start(argv[-1], argv, env)
            for name in SERVICES:
                url = f"http://127.0.0.1:{machine.ports[name]}/readyz"
                ready = functools.partial(_ready, url, processes.running[name])
                await eventually(ready, within=READY_WITHIN_S, interval=0.1)

            answer = orjson.loads(await _bash(after, env, tmp_path))
            assert answer["status"] == "accepted" and answer["new_lead"], answer

            [request] = await eventually(lambda: crm.received, within=DELIVERED_WITHIN_S)
        finally:
            codes = await processes.stop()
        assert codes == dict.fromkeys(codes, 0), {n: processes.log(n) for n in codes if codes[n]}

    secret = _subscription_secret(output)
    event = Webhook(secret).verify(request.body, request.headers)
    assert event["type"] == "lead.mql" and event["subject"] == answer["lead_id"]
    assert request.headers["webhook-id"] == event["id"]
