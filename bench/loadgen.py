"""A minimal HTTP/1.1 load generator: keep-alive connections, one request in flight on each.

Python HTTP clients (httpx, aiohttp) spend more CPU per request than the servers measured here, so
they would measure themselves. This one runs in its own process(es) on uvloop with raw
``asyncio.Protocol`` connections: requests are pre-built bytes where only a fixed-width unique id
changes (so ``Content-Length`` never does), and a response is parsed no further than its status
code and ``Content-Length``.

A run is a warm-up, a measured window and a drain: a connection stops sending when the window
closes and waits (at most ``drain_s``) for its last answer, so every request sent is either
answered or counted as unanswered — a suite can then compare what the server accepted with what
it stored. Everything is bounded in time; the parent stops its workers even on error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import signal
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

import uvloop

from bench.servers import BenchError, stop_process

ID_MARKER = b"<id>"
"""Where a body takes the request's unique id (a fixed-width string of letters and digits)."""
COUNTER_DIGITS = 10


@dataclass(frozen=True)
class RequestTemplate:
    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/json"
    expect: int = 200
    """The status code of a successful answer; any other is counted as an error."""
    headers: tuple[tuple[str, str], ...] = ()

    def parts(self, host: str, port: int, id_prefix: bytes) -> tuple[bytes, bytes, bool]:
        """The request's bytes before and after the counter, and whether it has one."""
        before, marker, after = self.body.partition(ID_MARKER)
        numbered = bool(marker)
        length = len(before) + len(after)
        if numbered:
            before += id_prefix
            length += len(id_prefix) + COUNTER_DIGITS
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"User-Agent: leadflow-bench\r\n"
            f"Content-Type: {self.content_type}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in self.headers)
            + f"Content-Length: {length}\r\n\r\n"
        ).encode()
        return head + before, after, numbered


@dataclass(frozen=True)
class CpuProbe:
    """Processes whose CPU time is sampled at the edges of the measured window."""

    label: str
    pids: tuple[int, ...] = ()
    cmdline_contains: str | None = None
    """Also every process whose command line contains this (e.g. a PostgreSQL backend's
    ``postgres: user database …``), found when each sample is taken."""


@dataclass(frozen=True)
class LoadSpec:
    port: int
    template: RequestTemplate
    connections: int = 64
    processes: int = 1
    warmup_s: float = 2.0
    duration_s: float = 10.0
    drain_s: float = 30.0
    connect_timeout_s: float = 5.0
    host: str = "127.0.0.1"
    probes: tuple[CpuProbe, ...] = ()
    run_tag: str = "run"
    """Part of every unique id, so two runs never post the same one."""


@dataclass
class WorkerResult:
    """What one load-generator process saw; merged into ``Stats`` by the parent."""

    window_s: float = 0.0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    window_status: Counter[int] = field(default_factory=Counter)
    window_failures: int = 0
    total_status: Counter[int] = field(default_factory=Counter)
    total_failures: int = 0
    sent: int = 0
    unanswered: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_window_s: float = 0.0


@dataclass(frozen=True)
class Stats:
    """One load run: throughput and latency over the measured window, counts over the whole run."""

    requests: int
    """Answers received inside the measured window."""
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    """Inside the window: answers with an unexpected status, and failed or dropped connections."""
    sent: int
    """Requests written over the whole run (warm-up, window and drain)."""
    expected_total: int
    """Answers with the expected status over the whole run."""
    unanswered: int
    """Requests written that never got an answer (connection lost or hard stop)."""
    statuses: dict[int, int]
    cpu: dict[str, float]
    """Average number of cores busy during the window, per probe label."""

    @property
    def per_server_core(self) -> float | None:
        """Requests/s per core the server kept busy: less sensitive than requests/s to other
        load on the machine, which takes cores away from the server."""
        busy = self.cpu.get("server")
        return self.rps / busy if busy else None


# --------------------------------------------------------------------------- parent side


def run_load(spec: LoadSpec) -> Stats:
    """Run ``spec`` in ``spec.processes`` worker processes and merge what they measured."""
    context = multiprocessing.get_context("spawn")
    workers: list[tuple[BaseProcess, Connection]] = []
    try:
        for index in range(spec.processes):
            ours, theirs = context.Pipe()
            child = context.Process(
                target=_worker, args=(spec, index, theirs), name=f"loadgen-{index}", daemon=True
            )
            child.start()
            theirs.close()
            workers.append((child, ours))
        for process, pipe in workers:
            if _receive(process, pipe, time.monotonic() + 60) != "ready":
                raise BenchError(f"{process.name} did not start")
        for _process, pipe in workers:
            pipe.send("go")
        deadline = time.monotonic() + spec.warmup_s + spec.duration_s + spec.drain_s + 30
        results = [_receive(process, pipe, deadline) for process, pipe in workers]
        return summarize(results, expect=spec.template.expect)
    finally:
        for process, pipe in workers:
            stop_process(process)
            pipe.close()


def _receive(process: BaseProcess, pipe: Connection, deadline: float) -> object:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchError(f"{process.name} did not answer in time")
        if pipe.poll(min(remaining, 0.5)):
            try:
                return pipe.recv()
            except EOFError:
                raise BenchError(f"{process.name} exited ({process.exitcode})") from None
        if not process.is_alive() and not pipe.poll():
            raise BenchError(f"{process.name} exited ({process.exitcode})")


def summarize(results: list[object], *, expect: int) -> Stats:
    merged = WorkerResult()
    rps = 0.0
    cpu: dict[str, float] = {}
    for result in results:
        if not isinstance(result, WorkerResult):
            raise BenchError(f"load generator failed: {result}")
        answered = sum(result.window_status.values())
        rps += answered / result.window_s if result.window_s > 0 else 0.0
        merged.latencies.extend(result.latencies)
        merged.window_status.update(result.window_status)
        merged.window_failures += result.window_failures
        merged.total_status.update(result.total_status)
        merged.sent += result.sent
        merged.unanswered += result.unanswered
        for label, seconds in result.cpu_s.items():
            if result.cpu_window_s > 0:
                cpu[label] = cpu.get(label, 0.0) + seconds / result.cpu_window_s
    latencies = sorted(merged.latencies)
    unexpected = sum(n for status, n in merged.window_status.items() if status != expect)
    return Stats(
        requests=len(latencies),
        rps=rps,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        errors=unexpected + merged.window_failures,
        sent=merged.sent,
        expected_total=merged.total_status.get(expect, 0),
        unanswered=merged.unanswered,
        statuses=dict(sorted(merged.total_status.items())),
        cpu=cpu,
    )


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- worker side


def _worker(spec: LoadSpec, index: int, pipe: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    pipe.send("ready")
    if not pipe.poll(120) or pipe.recv() != "go":
        return
    try:
        result: object = uvloop.run(_Run(spec, index).run())
    except Exception as error:  # reported to the parent, which fails the run
        result = f"{error.__class__.__name__}: {error}"
    pipe.send(result)


class _Run:
    def __init__(self, spec: LoadSpec, index: int) -> None:
        self.spec = spec
        share, extra = divmod(spec.connections, spec.processes)
        self.slots = share + (1 if index < extra else 0)
        prefix = f"{spec.run_tag}p{index}x".encode()
        self.before, self.after, self.numbered = spec.template.parts(spec.host, spec.port, prefix)
        self.counter = 0
        self.result = WorkerResult()
        probes = list(spec.probes) if index == 0 else []
        self.probes = [CpuProbe("loadgen", (os.getpid(),)), *probes]
        self.connections: set[_Connection] = set()
        self.open_tasks: set[asyncio.Task[None]] = set()
        self.active = 0
        self.stopped = False
        self.window_start = self.window_end = self.hard_stop = 0.0
        self.cpu_start: tuple[float, dict[str, dict[int, int]]] | None = None

    def request(self) -> bytes:
        self.result.sent += 1
        if not self.numbered:
            return self.before + self.after
        self.counter += 1
        return self.before + b"%010d" % self.counter + self.after

    async def run(self) -> WorkerResult:
        loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = loop.create_future()
        start = time.perf_counter()
        self.window_start = start + self.spec.warmup_s
        self.window_end = self.window_start + self.spec.duration_s
        self.hard_stop = self.window_end + self.spec.drain_s
        loop.call_later(self.spec.warmup_s, self._sample_cpu)
        loop.call_later(self.spec.warmup_s + self.spec.duration_s, self._sample_cpu)
        self.active = self.slots
        for _ in range(self.slots):
            self._open()
        try:
            await asyncio.wait_for(asyncio.shield(self.done), self.hard_stop - time.perf_counter())
        except TimeoutError:
            self._abort()
        if self.cpu_start is not None and not self.result.cpu_window_s:
            self._sample_cpu()  # the last answers came before the timer did
        self.result.window_s = self.spec.duration_s
        return self.result

    def _open(self) -> None:
        task = asyncio.get_running_loop().create_task(self._connect())
        self.open_tasks.add(task)
        task.add_done_callback(self.open_tasks.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopped:
            try:
                await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Connection(self), self.spec.host, self.spec.port
                    ),
                    self.spec.connect_timeout_s,
                )
                return
            except (OSError, TimeoutError):
                self.failed(time.perf_counter())
                if time.perf_counter() >= self.window_end:
                    break
                await asyncio.sleep(0.05)
        self.slot_done()

    def answered(self, status: int, started: float, now: float) -> bool:
        """Record an answer; whether the connection should send another request."""
        result = self.result
        result.total_status[status] += 1
        if self.window_start <= now < self.window_end:
            result.window_status[status] += 1
            result.latencies.append(now - started)
        return now < self.window_end and not self.stopped

    def failed(self, now: float) -> None:
        self.result.total_failures += 1
        if self.window_start <= now < self.window_end:
            self.result.window_failures += 1

    def closed(self, connection: _Connection, *, lost_request: bool) -> None:
        self.connections.discard(connection)
        if self.stopped:
            return
        now = time.perf_counter()
        if lost_request:
            self.result.unanswered += 1
            self.failed(now)
        if now < self.window_end:
            self._open()  # the slot keeps its place in the load
        else:
            self.slot_done()

    def slot_done(self) -> None:
        self.active -= 1
        if self.active <= 0 and not self.done.done():
            self.done.set_result(None)

    def _abort(self) -> None:
        self.stopped = True
        for task in self.open_tasks:
            task.cancel()
        for connection in list(self.connections):
            if connection.started is not None:
                self.result.unanswered += 1
            connection.transport.abort()
        self.connections.clear()

    def _sample_cpu(self) -> None:
        now = time.perf_counter()
        sample = {probe.label: _cpu_ticks(probe) for probe in self.probes}
        if self.cpu_start is None:
            self.cpu_start = (now, sample)
            return
        then, before = self.cpu_start
        tick = os.sysconf("SC_CLK_TCK")
        self.result.cpu_window_s = now - then
        for label, ticks in sample.items():
            used = sum(t - before[label][pid] for pid, t in ticks.items() if pid in before[label])
            self.result.cpu_s[label] = used / tick


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the answer, send the next one."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buffer = b""
        self.started: float | None = None
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass
        self.run.connections.add(self)
        if time.perf_counter() < self.run.window_end:
            self._send()
        else:
            transport.close()

    def _send(self) -> None:
        self.started = time.perf_counter()
        self.transport.write(self.run.request())

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        head = buffer[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0 or self.started is None:  # chunked or unsolicited: not for this generator
            self.transport.close()
            return
        stop = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17 : stop if stop >= 0 else len(head)])
        if len(buffer) < total:
            self.buffer = buffer
            return
        self.buffer = buffer[total:]
        now = time.perf_counter()
        started, self.started = self.started, None
        again = self.run.answered(int(buffer[9:12]), started, now)
        if again and b"\r\nconnection: close" not in head:
            self._send()
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        lost = self.started is not None
        self.started = None
        self.run.closed(self, lost_request=lost)


def _cpu_ticks(probe: CpuProbe) -> dict[int, int]:
    """utime + stime (clock ticks) of each process the probe names."""
    pids = set(probe.pids)
    if probe.cmdline_contains:
        needle = probe.cmdline_contains.encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as file:
                        if needle in file.read():
                            pids.add(int(entry))
                except OSError:
                    continue
    ticks = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks
