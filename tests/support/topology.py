"""The production topology as separate OS processes, for fault runs (``bench.chaos``, the e2e test).

PostgreSQL is a server of the run's own (``PostgresServer``, which faults stop and start), the
broker is embedded on a fixed port (so a restart comes back at the same address, empty: memory
storage), the CRM is a real HTTP receiver on 127.0.0.1 subscribed to every lifecycle and SLA
event (``lead.*``, ``sla.*``) that the harness can make flap (``FlappingCrm``), and
``python -m services intake|scoring|webhooks|sla-monitor|analytics`` run as five processes, each
logging to a file of its own (appended across restarts). The database is prepared as a
production team would: the sample qualification rules live, a team of three reps with capped
open leads (``MAX_OPEN``), SLA policies whose ladders fall due within seconds (``SLA_POLICIES``),
and a Google Ads key.

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
from tests.support.deliveries import Deliveries, FlappingCrm
from tests.support.postgres_server import PostgresServer
from tests.support.receiver import Receiver
from tests.support.routing import capped_pool
from tests.support.sla import activate as activate_sla

SECRET_KEY = "sk_chaos"
GOOGLE_ADS_KEY = "chaos-google-key"
SERVICES = ("intake", "scoring", "webhooks", "sla-monitor", "analytics")
EVENT_TYPES = ["lead.*", "sla.*"]
MAX_OPEN = 40
"""Each of the three reps' cap: a run qualifies more leads than 120, so the cap is reached and
the rest wait in the queue (``lead.queued``, a pickup clock) until a rejection frees a place."""
SLA_POLICIES = """
name: Chaos SLAs
calendar: always
contacts:
  manager: [manager@example.com]
policies:
  - id: chaos
    pickup:
      within: 8s
      ladder: [{at: 100%, notify: [manager]}]
    first_response:
      within: 10s
      ladder:
        - {at: 50%, notify: [owner]}
        - {at: 100%, notify: [manager]}
        - {at: 100% + 4s, notify: [manager]}
    acceptance: {within: 16s}
"""
"""Ladders that fall due within the run: a first response is warned at 5 s, breached at 10 s and
escalated (notify only: a reassignment would blur "routed once") at 14 s."""
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
    crm: FlappingCrm
    services: dict[str, Service]
    folder: Path
    topic_prefix: str
    journal: Journal

    def topic(self, name: str) -> str:
        """``lifecycle``, ``sla``…: the run's topic of that name."""
        return f"{self.topic_prefix}.{name}"

    @property
    def deliveries(self) -> Deliveries:
        return self.crm.deliveries

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
    """The broker, the receiver and the five processes, ready; all stopped on leaving."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=free_port(), log_path=folder / "broker.log")
    await asyncio.to_thread(broker.start)
    crm = FlappingCrm()
    receiver = Receiver(crm.respond, keep=False)
    await receiver.start()
    prefix = f"chaos{uuid4().hex[:8]}"
    ports = {name: free_port() for name in SERVICES}
    env = _environment(db_url, broker.bootstrap_servers, prefix, ports, extra_env or {})
    journal = Journal(folder / "harness.log")
    services = {
        name: Service(name, ports[name], env, folder / f"{name}.log", journal) for name in SERVICES
    }
    topology = Topology(postgres, db_url, broker, receiver, crm, services, folder, prefix, journal)
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
        LEADFLOW_KAFKA__IDEMPOTENCE="false",  # the embedded broker has no InitProducerId
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
        LEADFLOW_HTTP__SLA_MONITOR_PORT=str(ports["sla-monitor"]),
        LEADFLOW_HTTP__ANALYTICS_PORT=str(ports["analytics"]),
        LEADFLOW_PLATFORMS__GOOGLE_ADS_KEY=GOOGLE_ADS_KEY,
        # A flapping CRM is retried within seconds, never exhausted within a run (Svix's
        # schedule waits 5 min after the second failure), and its circuit pauses it briefly;
        # a killed dispatcher's leases run out after timeout + 30 s.
        LEADFLOW_WEBHOOKS__RETRY_SCHEDULE_S=str([0, 0.5, 1] + [2] * 60),
        LEADFLOW_WEBHOOKS__BREAKER_COOLDOWN_S="1",
        LEADFLOW_WEBHOOKS__TIMEOUT_S="5",
    )
    env.update(extra)
    return env


async def _prepare(db_url: str, receiver_url: str) -> None:
    """The sample rules live (without them nothing is scored), the reps and the SLA policies
    in place, the receiver subscribed."""
    settings = load_settings(db={"url": db_url})
    runtime = Runtime.create(settings)
    try:
        await activate_sample_rules(runtime)
        webhooks = settings.webhooks.model_copy(update={"allowed_networks": ["127.0.0.0/8"]})
        async with runtime.sessions.begin() as session:
            await capped_pool(session, MAX_OPEN)
            await activate_sla(session, settings, text=SLA_POLICIES)
            body = SubscriptionIn(url=receiver_url, event_types=EVENT_TYPES)
            await store.create(session, body, settings=webhooks, now=datetime.now(UTC))
    finally:
        await runtime.close()
