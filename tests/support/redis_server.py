"""A Redis server of the test's own, on 127.0.0.1, that the test may stop and start again.

``redis-server`` runs as a subprocess on a free port, with a password, no snapshots and no
append-only file (a restart starts empty), so no test depends on the machine's Redis service.
``start()`` returns once the server says it is ready to accept connections.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType

from shared.broker import free_port

READY = "Ready to accept connections"


class RedisUnavailable(RuntimeError):
    """No ``redis-server`` binary on this machine."""


class RedisServer:
    def __init__(self, log_dir: Path, *, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(
                "no redis-server binary: apt-get install redis-server (make test installs it)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.password = "pw-" + secrets.token_hex(8)
        self.log_dir = log_dir
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, within_s: float = 20) -> None:
        process = self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--requirepass", self.password]
            + ["--dir", str(self.log_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._copy_log, args=(process, ready), daemon=True).start()
        if not ready.wait(within_s):  # the server's own word that it accepts connections
            self.stop()
            raise RuntimeError(f"redis-server did not start: see {self.log}")

    @property
    def log(self) -> Path:
        return self.log_dir / f"redis-{self.port}.log"

    def _copy_log(self, process: subprocess.Popen[str], ready: threading.Event) -> None:
        """Its output into ``log`` (so the pipe never fills and holds the server up)."""
        assert process.stdout is not None
        with self.log.open("a") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                if READY in line:
                    ready.set()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
