"""Fault plans: what goes wrong when, as routine maintenance or a crash would cause it.

A plan is a list of ``Fault`` at seconds into the load. Each is applied in turn; one that takes
longer than the gap to the next (a service slow to be ready again) delays the rest, and the log
says when each really began and how long it took.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from tests.support.topology import SERVICES, Topology


@dataclass(frozen=True)
class Fault:
    at: float
    """Seconds after the load started."""
    kind: str
    """``postgres-restart``, ``postgres-refusing``, ``postgres-down``, ``broker-restart``,
    ``kill``, ``crm-flap``."""
    targets: tuple[str, ...] = ()
    """The services a ``kill`` ends, at once."""
    hold: float = 0.0
    """Seconds refusing (57P03), down, or flapping."""
    then_down: float = 0.0
    """After refusing: seconds stopped (connection refused) before it starts again."""
    mode: str = ""
    """How the CRM flaps: ``5xx`` (500 and 503 answers) or ``drop`` (connections closed
    unanswered)."""

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
        if self.kind == "crm-flap":
            how = "answering 5xx" if self.mode == "5xx" else "dropping connections"
            return f"CRM receiver {how} for {self.hold:g}s"
        if self.kind == "kill-no-wait":
            return f"{' and '.join(self.targets)} killed (SIGKILL) and started (not awaited)"
        return f"{' and '.join(self.targets)} killed (SIGKILL) and started again"


@dataclass(frozen=True)
class Applied:
    fault: Fault
    began: float
    """Seconds after the load started."""
    took: float
    error: str = ""


def default_plan(seconds: float, _seed: int = 0) -> list[Fault]:
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


def short_plan(seconds: float, _seed: int = 0) -> list[Fault]:
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


def chaos_plan(seconds: float, seed: int = 20, *, kills: int = 1, rounds: int = 1) -> list[Fault]:
    """Everything, at seeded random points: each of the five processes killed ``kills`` times,
    and ``rounds`` times each the broker restarted empty, PostgreSQL restarted (a fast restart,
    then in later rounds a shutdown's refusals and a stop), and the CRM flapping twice (5xx, then
    dropped connections). Faults fall in the first 85 % of the load, so the run's end sees the
    recovery; they are applied one after the other (``apply_plan``)."""
    rng = random.Random(seed)
    database = [
        Fault(0, "postgres-restart"),
        Fault(0, "postgres-refusing", hold=2.0, then_down=1.0),
        Fault(0, "postgres-down", hold=3.0),
    ]
    kinds = [Fault(0, "kill-no-wait", targets=(n,)) for n in SERVICES for _ in range(kills)]
    for round_ in range(rounds):
        kinds.append(Fault(0, "broker-restart"))
        kinds.append(database[round_ % len(database)])
        kinds.append(Fault(0, "crm-flap", hold=round(rng.uniform(2, 5), 1), mode="5xx"))
        kinds.append(Fault(0, "crm-flap", hold=round(rng.uniform(2, 5), 1), mode="drop"))
    times = sorted(rng.uniform(0.05, 0.85) * seconds for _ in kinds)
    rng.shuffle(kinds)
    return [replace(fault, at=round(at, 1)) for fault, at in zip(kinds, times, strict=True)]


def long_chaos_plan(seconds: float, seed: int = 20) -> list[Fault]:
    """``make chaos``: each process killed three times, three rounds of the rest."""
    return chaos_plan(seconds, seed, kills=3, rounds=3)


PLANS: dict[str, Callable[[float, int], list[Fault]]] = {
    "chaos": long_chaos_plan,
    "chaos-short": chaos_plan,
    "default": default_plan,
    "short": short_plan,
}


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


async def _kill_and_go_on(topology: Topology, fault: Fault) -> None:
    """SIGKILL and start again, without waiting for it to be ready: the next fault may find it
    still starting, as a crash loop or a slow node would."""
    for name in fault.targets:
        await topology.services[name].kill()
        await topology.services[name].start()


async def _crm_flap(topology: Topology, fault: Fault) -> None:
    topology.crm.flap(fault.mode)
    try:
        await asyncio.sleep(fault.hold)  # the fault itself: the CRM misbehaves this long
    finally:
        topology.crm.steady()


_ACTIONS: dict[str, Callable[[Topology, Fault], Awaitable[None]]] = {
    "postgres-restart": _postgres_restart,
    "postgres-refusing": _postgres_refusing,
    "postgres-down": _postgres_down,
    "broker-restart": _broker_restart,
    "kill": _kill,
    "kill-no-wait": _kill_and_go_on,
    "crm-flap": _crm_flap,
}
