"""Fault plans: what goes wrong when, as routine maintenance or a crash would cause it.

A plan is a list of ``Fault`` at seconds into the load. Each is applied in turn; one that takes
longer than the gap to the next (a service slow to be ready again) delays the rest, and the log
says when each really began and how long it took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.support.topology import Topology


@dataclass(frozen=True)
class Fault:
    at: float
    """Seconds after the load started."""
    kind: str
    """``postgres-restart``, ``postgres-refusing``, ``postgres-down``, ``broker-restart``,
    ``kill``."""
    targets: tuple[str, ...] = ()
    """The services a ``kill`` ends, at once."""
    hold: float = 0.0
    """Seconds refusing (57P03) or down."""
    then_down: float = 0.0
    """After refusing: seconds stopped (connection refused) before it starts again."""

    def describe(self) -> str:
        if self.kind == "postgres-restart":
            return "PostgreSQL restarted (pg_ctl restart -m fast)"
        if self.kind == "postgres-refusing":
            return (
                f"PostgreSQL refusing new connections (57P03) for {self.hold:g}s, "
                f"then stopped {self.then_down:g}s, then started"
            )
        if self.kind == "postgres-down":
            return f"PostgreSQL stopped (-m fast) for {self.hold:g}s, then started"
        if self.kind == "broker-restart":
            return "broker restarted at the same address (empty: memory storage)"
        return f"{' and '.join(self.targets)} killed (SIGKILL) and started again"


@dataclass(frozen=True)
class Applied:
    fault: Fault
    began: float
    """Seconds after the load started."""
    took: float
    error: str = ""


def default_plan(seconds: float) -> list[Fault]:
    """Every fault once over the load, spaced so each is recovered from before the next."""
    return [
        Fault(0.10 * seconds, "kill", targets=("intake",)),
        Fault(0.20 * seconds, "postgres-restart"),
        Fault(0.30 * seconds, "kill", targets=("scoring",)),
        Fault(0.42 * seconds, "postgres-refusing", hold=3.0, then_down=2.0),
        Fault(0.55 * seconds, "broker-restart"),
        Fault(0.67 * seconds, "kill", targets=("webhooks",)),
        Fault(0.80 * seconds, "postgres-down", hold=5.0),
    ]


def short_plan(seconds: float) -> list[Fault]:
    """For the test suite, every kind of fault in about half a minute: the database going away
    as in a shutdown, intake killed (posts retried with their keys), the broker back empty,
    then both consumers' processes killed at once mid-delivery (the slowest to recover: each
    rejoins its consumer group)."""
    return [
        Fault(0.10 * seconds, "postgres-refusing", hold=2.0, then_down=1.0),
        Fault(0.35 * seconds, "kill", targets=("intake",)),
        Fault(0.55 * seconds, "broker-restart"),
        Fault(0.80 * seconds, "kill", targets=("scoring", "webhooks")),
    ]


PLANS: dict[str, Callable[[float], list[Fault]]] = {"default": default_plan, "short": short_plan}


async def apply_plan(topology: Topology, plan: list[Fault], started: float) -> list[Applied]:
    """Apply each fault at its time (``started``: ``time.monotonic()`` when the load began)."""
    applied = []
    for fault in sorted(plan, key=lambda f: f.at):
        delay = started + fault.at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        began = time.monotonic()
        error = ""
        topology.journal.note(f"fault: {fault.describe()}")
        try:
            await _ACTIONS[fault.kind](topology, fault)
        except Exception as failure:  # the run goes on; the report shows the fault failed
            error = f"{failure.__class__.__name__}: {failure}"
        topology.journal.note(f"fault over {error}")
        applied.append(Applied(fault, began - started, time.monotonic() - began, error))
    return applied


async def _postgres_restart(topology: Topology, _fault: Fault) -> None:
    await asyncio.to_thread(topology.postgres.restart, "fast")


async def _postgres_refusing(topology: Topology, fault: Fault) -> None:
    async with topology.postgres.refusing():
        topology.journal.note("PostgreSQL refusing (57P03)")
        await asyncio.sleep(fault.hold)
    topology.journal.note("PostgreSQL stopped")
    await asyncio.sleep(fault.then_down)  # refusing() leaves it stopped
    await asyncio.to_thread(topology.postgres.start)


async def _postgres_down(topology: Topology, fault: Fault) -> None:
    await asyncio.to_thread(topology.postgres.stop, "fast")
    await asyncio.sleep(fault.hold)
    await asyncio.to_thread(topology.postgres.start)


async def _broker_restart(topology: Topology, _fault: Fault) -> None:
    await asyncio.to_thread(topology.restart_broker)


async def _kill(topology: Topology, fault: Fault) -> None:
    await asyncio.gather(*(topology.services[name].restart() for name in fault.targets))


_ACTIONS: dict[str, Callable[[Topology, Fault], Awaitable[None]]] = {
    "postgres-restart": _postgres_restart,
    "postgres-refusing": _postgres_refusing,
    "postgres-down": _postgres_down,
    "broker-restart": _broker_restart,
    "kill": _kill,
}
