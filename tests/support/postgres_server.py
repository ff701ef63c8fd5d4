"""A PostgreSQL server of the test's own, on 127.0.0.1, that the test may stop and start.

The machine's server (``TEST_POSTGRES_URL``) is shared by every test; an outage test needs one
it can take down. ``PostgresServer`` runs ``initdb`` into a fresh directory and ``pg_ctl`` on a
free port (TCP on 127.0.0.1 only, no Unix socket, trust auth). Run as root, the server runs as
the ``postgres`` user, since PostgreSQL refuses to run as root.

``refusing()`` holds the server in the state PostgreSQL is in while it shuts down: a *smart*
shutdown waits for the sessions still open (one of ours), and meanwhile every new connection is
refused with SQLSTATE 57P03 ("the database system is shutting down"); the sessions the services
held are ended first (as a fast shutdown ends them: SQLSTATE 57P01). Leaving the block lets the
shutdown finish, so the server is then stopped (connection refused) until ``start()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from shared.broker import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (``initdb``, ``pg_ctl``)."""


def server_binaries() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: ``$PG_BINDIR``, Debian's newest, or the PATH."""
    if bindir := os.environ.get("PG_BINDIR"):
        return Path(bindir)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if debian:
        return Path(debian[-1]).parent
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql or set PG_BINDIR"
    )


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class PostgresServer:
    def __init__(self, *, port: int | None = None) -> None:
        self.bindir = server_binaries()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="leadflow-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        status = subprocess.run(
            self._command("pg_ctl", "-D", str(self.data), "status"), capture_output=True
        )
        return status.returncode == 0

    @contextlib.asynccontextmanager
    async def refusing(self) -> AsyncIterator[None]:
        """New connections are refused with 57P03 inside the block; the server is stopped after."""
        holder = await self.connect()
        await holder.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        self._run("pg_ctl", "-D", str(self.data), "-m", "smart", "--no-wait", "stop")
        await self._wait_refusing()
        try:
            yield
        finally:
            await holder.close()
            await asyncio.to_thread(self._wait_stopped)

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=10
        )

    async def _wait_refusing(self, within: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                probe = await self.connect()
            except asyncpg.CannotConnectNowError:
                return
            await probe.close()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the server still accepts connections")
            await asyncio.sleep(0.02)

    def _wait_stopped(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-t", "30", "-w", "stop", check=False)

    def destroy(self) -> None:
        if self.data.exists() and self.running:
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bindir / tool), *args]
        return command if self._user is None else ["runuser", "-u", self._user, "--", *command]

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        done = subprocess.run(
            self._command(tool, *args),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if check and done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args)} failed: {done.stderr}{done.stdout}{log}")

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.destroy()
