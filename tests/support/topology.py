"""The production topology as separate OS processes, for fault runs (``bench.chaos``, the e2e test).

PostgreSQL is a server of the run's own (``PostgresServer``, which faults stop and start), the
broker is embedded on a fixed port (so a restart comes back at the same address, empty: memory
storage), the CRM is a real HTTP receiver on 127.0.0.1, subscribed to ``lead.scored`` and
``lead.mql``, and ``python -m services intake|scoring|webhooks`` run as three processes, each
logging to a file of its own (appended across restarts).

A watcher awaits each process: one that exits without the harness having killed or stopped it
is recorded (a process must survive outages) and started again, as an orchestrator would, so
that the rest of the run still says something.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx
from sqlalchemy.engine import make_url

from services.scoring.main import activate_sample_rules
from services.settings import load_settings
from services.webhooks import store
from services.webhooks.schemas import SubscriptionIn
from shared.broker import EMBEDDED_PARTITIONS, EmbeddedBroker, free_port
from shared.db import make_engine
from shared.migrate import upgrade
from shared.runtime import Runtime
from tests.support.deliveries import Deliveries
from tests.support.postgres_server import PostgresServer
from tests.support.receiver import Receiver

SECRET_KEY = "sk_chaos"
SERVICES = ("intake", "scoring", "webhooks")
EVENT_TYPES = ["lead.scored", "lead.mql"]
READY_WITHIN_S = 120.0
"""Generous: a process starting on a busy two-core machine, then joining its consumer group
while the members of the process it replaces are still being timed out."""
STOP_WITHIN_S = 30.0


@dataclass(frozen=True)
class Exit:
    """A process that ended without the harness asking it to."""

    service: str
    code: int
    at: float
    """Seconds since the topology started."""


@dataclass
class Journal:
    """What the harness did and saw, when (``harness.log`` beside the processes' logs)."""

    path: Path
    epoch: float = field(default_factory=time.monotonic)
    exits: list[Exit] = field(default_factory=list)

    def note(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self.path.open("a") as journal:
            journal.write(f"{stamp} +{self.elapsed():7.2f}s {text}\n")

    def elapsed(self) -> float:
        return time.monotonic() - self.epoch

    def exited(self, service: str, code: int) -> None:
        self.exits.append(Exit(service, code, self.elapsed()))
        self.note(f"{service} exited on its own with code {code}; starting it again")


@dataclass
class Service:
    """One ``python -m services <name>`` process, started again after a kill or an exit."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    journal: Journal
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    stop_codes: list[int] = field(default_factory=list)
    _watcher: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {datetime.now(UTC).isoformat()}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services",
                self.name,
                env=self.env,
                cwd=self.log.parent,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        self.starts += 1
        self.journal.note(f"{self.name}: started (pid {self.process.pid})")
        self._watcher = asyncio.create_task(self._watch(self.process), name=f"watch-{self.name}")

    async def ready(self, within: float = READY_WITHIN_S) -> float:
        """Wait for ``/readyz`` to answer 200; the seconds it took."""
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=3) as client:
            while True:
                try:
                    answer = await client.get(f"{self.base_url}/readyz")
                    if answer.status_code == 200:
                        self.journal.note(f"{self.name}: ready")
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > within:
                    raise TimeoutError(f"{self.name} not ready within {within:.0f}s")
                await asyncio.sleep(0.2)

    async def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a node failure would end it."""
        process = self._forget()
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGKILL)
            self.journal.note(f"{self.name}: SIGKILL sent")
            await process.wait()
            self.journal.note(f"{self.name}: killed")

    async def restart(self) -> float:
        """Kill, start again, wait until ready; the seconds until ready."""
        await self.kill()
        await self.start()
        return await self.ready()

    async def stop(self) -> None:
        """SIGTERM and wait; the exit code goes to ``stop_codes`` (0 is a clean stop)."""
        process = self._forget()
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            self.stop_codes.append(await asyncio.wait_for(process.wait(), STOP_WITHIN_S))
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            self.stop_codes.append(await process.wait())

    def _forget(self) -> asyncio.subprocess.Process | None:
        """Whatever happens to the current process from here on is the harness's doing."""
        process, self.process = self.process, None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        return process

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if process is not self.process:
            return
        self.journal.exited(self.name, code)
        self.process = None
        await self.start()


@dataclass
class Topology:
    postgres: PostgresServer
    db_url: str
    broker: EmbeddedBroker
    receiver: Receiver
    deliveries: Deliveries
    services: dict[str, Service]
    folder: Path
    topic_prefix: str
    journal: Journal

    @property
    def intake_url(self) -> str:
        return self.services["intake"].base_url

    @property
    def logs(self) -> dict[str, Path]:
        return {name: service.log for name, service in self.services.items()}

    @property
    def dsn(self) -> str:
        """The database for asyncpg (no SQLAlchemy driver name)."""
        return make_url(self.db_url).set(drivername="postgresql").render_as_string(False)

    def restart_broker(self) -> None:
        """Stop it and start it at the same address: topics, records and offsets are gone."""
        self.broker.stop()
        self.broker.start()


async def fresh_database(server: PostgresServer, name: str | None = None) -> str:
    """A database on ``server``, migrated; its SQLAlchemy URL."""
    name = name or f"chaos_{uuid4().hex[:12]}"
    admin = await server.connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(server.url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(load_settings(db={"url": url}).db)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


@asynccontextmanager
async def running_topology(
    postgres: PostgresServer,
    db_url: str,
    folder: Path,
    *,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Topology]:
    """The broker, the receiver and the three processes, ready; all stopped on leaving."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=free_port(), log_path=folder / "broker.log")
    await asyncio.to_thread(broker.start)
    deliveries = Deliveries()
    receiver = Receiver(keep=False)
    receiver.on_request = deliveries.record
    await receiver.start()
    prefix = f"chaos{uuid4().hex[:8]}"
    ports = {name: free_port() for name in SERVICES}
    env = _environment(db_url, broker.bootstrap_servers, prefix, ports, extra_env or {})
    journal = Journal(folder / "harness.log")
    services = {
        name: Service(name, ports[name], env, folder / f"{name}.log", journal) for name in SERVICES
    }
    topology = Topology(
        postgres, db_url, broker, receiver, deliveries, services, folder, prefix, journal
    )
    try:
        await _prepare(db_url, receiver.url())
        for service in services.values():
            await service.start()
        for service in services.values():
            await service.ready()
        yield topology
    finally:
        await asyncio.gather(*(service.stop() for service in services.values()))
        await receiver.stop()
        broker.stop()


def _environment(
    db_url: str, bootstrap: str, prefix: str, ports: dict[str, int], extra: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DB__URL=db_url,
        LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=bootstrap,
        LEADFLOW_KAFKA__PARTITIONS=str(EMBEDDED_PARTITIONS),  # as `leadflow dev` makes them
        LEADFLOW_KAFKA__SESSION_TIMEOUT_MS="6000",
        LEADFLOW_KAFKA__HEARTBEAT_INTERVAL_MS="500",
        LEADFLOW_TOPICS__PREFIX=prefix,
        LEADFLOW_AUTH__SECRET_KEYS=f'["{SECRET_KEY}"]',
        LEADFLOW_WEBHOOKS__ALLOWED_NETWORKS='["127.0.0.0/8"]',
        LEADFLOW_LOG_LEVEL="WARNING",
        LEADFLOW_INTAKE__RATE_LIMIT_PER_IP="",  # one load generator posts everything
        LEADFLOW_INTAKE__RATE_LIMIT_PER_KEY="",
        LEADFLOW_HTTP__HOST="127.0.0.1",
        LEADFLOW_HTTP__INTAKE_PORT=str(ports["intake"]),
        LEADFLOW_HTTP__SCORING_PORT=str(ports["scoring"]),
        LEADFLOW_HTTP__WEBHOOKS_PORT=str(ports["webhooks"]),
    )
    env.update(extra)
    return env


async def _prepare(db_url: str, receiver_url: str) -> None:
    """The sample rules live (without them nothing is scored); the receiver subscribed."""
    settings = load_settings(db={"url": db_url})
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        webhooks = settings.webhooks.model_copy(update={"allowed_networks": ["127.0.0.0/8"]})
        async with runtime.sessions.begin() as session:
            body = SubscriptionIn(url=receiver_url, event_types=EVENT_TYPES)
            await store.create(session, body, settings=webhooks, now=datetime.now(UTC))
    finally:
        await runtime.close()
