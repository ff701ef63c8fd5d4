"""Systems under test, each in its own process on 127.0.0.1, and the process management around them.

- ``asgi_server(name, factory)``: an ASGI app built by ``factory`` in the child, served by uvicorn
  with one worker, uvloop, httptools and no access log — the options the comparison is about.
- ``bare_app``: the ceiling — FastAPI validating a body shaped like a lead submission, no I/O.
- ``raw_server()``: a trivial asyncio HTTP responder, to measure the load generator's own ceiling.

The child binds its listening socket itself (port 0) and reports the port, so there is no race for
a free port. Every server is stopped (SIGTERM, then SIGKILL) when its ``with`` block ends, however
it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import cast

import httpx
import uvicorn
import uvloop
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp

from shared.serve import GracefulServer, freeze_heap

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


class BenchError(RuntimeError):
    """The benchmark could not run or found a wrong result; ``make bench`` fails with it."""


def stop_process(process: BaseProcess, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: a child never outlives the benchmark."""
    if process.pid is None:
        return
    if process.is_alive():
        process.terminate()
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(5)


@dataclass(frozen=True)
class Served:
    """What a factory builds in the server process: the app and what to close after serving."""

    app: ASGIApp
    close: Callable[[], Awaitable[None]] | None = None


AppFactory = Callable[[], Served]
"""Built in the child, so it must be picklable: a module-level function or a ``partial`` of one."""


@dataclass(frozen=True)
class RunningServer:
    name: str
    process: BaseProcess
    port: int

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


# --------------------------------------------------------------------------- the ceiling app


class BareSubmission(BaseModel):
    """The shape of ``services.intake.schemas.LeadSubmission`` the benchmark posts."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: str = Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=300)
    source: str = Field("web", min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._\-]*$")


class BareAccepted(BaseModel):
    status: str = "accepted"


def bare_app() -> Served:
    """One ``POST /v1/leads`` that validates the body and answers 202, with no I/O at all."""
    app = FastAPI(title="bench ceiling")

    @app.post("/v1/leads", status_code=202)
    async def post_lead(submission: BareSubmission) -> BareAccepted:
        return BareAccepted()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Served(app)


# --------------------------------------------------------------------------- parent side


@contextlib.contextmanager
def asgi_server(name: str, factory: AppFactory) -> Iterator[RunningServer]:
    """Serve ``factory()`` with uvicorn in a child process until the block ends."""
    with _child(name, _serve_asgi, (factory,)) as server:
        yield server


@contextlib.contextmanager
def raw_server(name: str = "raw responder") -> Iterator[RunningServer]:
    """A trivial HTTP responder (no framework) in a child process until the block ends."""
    with _child(name, _serve_raw, ()) as server:
        yield server


@contextlib.contextmanager
def _child(
    name: str, target: Callable[..., None], args: tuple[object, ...]
) -> Iterator[RunningServer]:
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(
        target=target, args=(*args, theirs), name=f"server-{name}", daemon=True
    )
    try:
        process.start()
        theirs.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ours.poll(0.2):
            if not process.is_alive() or time.monotonic() > deadline:
                raise BenchError(f"server {name!r} did not start ({process.exitcode})")
        port = ours.recv()
        server = RunningServer(name, process, port)
        wait_ready(server, deadline=deadline)
        yield server
    finally:
        stop_process(process)
        ours.close()


def wait_ready(server: RunningServer, *, path: str = "/healthz", deadline: float) -> None:
    """Poll ``GET path`` until it answers 200 (the intake app's ``/healthz`` needs no broker)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\nConnection: close\r\n\r\n"
    while True:
        if not server.process.is_alive():
            raise BenchError(f"server {server.name!r} exited ({server.process.exitcode})")
        try:
            with socket.create_connection((HOST, server.port), timeout=2) as connection:
                connection.sendall(request.encode())
                if connection.recv(64).startswith(b"HTTP/1.1 200 "):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"server {server.name!r} not ready on {path}")
        time.sleep(0.1)


async def services_ready(ports: dict[str, int]) -> None:
    """Poll each port's ``GET /readyz`` until it answers 200 (Leadflow processes, up to 90 s)."""
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=5) as client:
        for port in ports.values():
            while True:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/readyz")
                    if response.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"service on port {port} not ready")
                await asyncio.sleep(0.2)


# --------------------------------------------------------------------------- child side


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)
    return sock


def _serve_asgi(factory: AppFactory, pipe: Connection) -> None:
    sock = _listen()
    served = factory()
    config = uvicorn.Config(
        served.app,
        host=HOST,
        port=sock.getsockname()[1],
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = GracefulServer(config)
    freeze_heap()  # as shared.serve does before serving, for every server measured

    async def main() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            if served.close is not None:
                await served.close()

    pipe.send(sock.getsockname()[1])
    pipe.close()
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


_REPLIES = {
    b"POST": b"HTTP/1.1 202 Accepted\r\ncontent-length: 21\r\ncontent-type: application/json"
    b'\r\n\r\n{"status":"accepted"}',
    b"GET ": b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json"
    b'\r\n\r\n{"status":"ok"}',
}


class _Responder(asyncio.Protocol):
    """Reads a request head and its ``Content-Length`` body, writes a canned answer."""

    def __init__(self) -> None:
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop: not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                break
            reply = _REPLIES.get(buffer[:4])
            if reply is None:
                self.transport.close()
                return
            self.transport.write(reply)
            buffer = buffer[total:]
        self.buffer = buffer


def _serve_raw(pipe: Connection) -> None:
    sock = _listen()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = await loop.create_server(_Responder, sock=sock, backlog=2048)
        pipe.send(sock.getsockname()[1])
        pipe.close()
        await stop.wait()
        server.close()

    uvloop.run(main())
