"""Run an HTTP app and a runtime's background work in one process, and stop both cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from shared import tracing
from shared.runtime import Runtime


class GracefulServer(uvicorn.Server):
    """uvicorn, minus re-raising the stop signal once it has stopped (see capture_signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the signal after a graceful stop; we still have a broker and a
        # database to close, so we take the signal as "stop" and return normally instead.
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


GC_THRESHOLDS = (50_000, 20, 20)
"""Young collections every 50,000 allocations, not 700: a scoring backlog allocates a few dicts
and models per lead, almost all freed by reference counting, and the collector ran ~300 times a
second looking for cycles among them (~10% of the process's CPU; docs/benchmarks.md)."""


def freeze_heap() -> None:
    """Take what start-up allocated (modules, models, the app) out of the garbage collector's
    sight, and collect young objects less often (``GC_THRESHOLDS``). Otherwise every full
    collection walks those ~200,000 objects again: a pause of about 100 ms every few seconds
    under load, which was most of intake's p99 (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(runtime: Runtime, app: FastAPI, *, port: int, host: str | None = None) -> int:
    """Serve until a signal (exit 0) or until a background task ends (exit 1): it waited out
    every outage, so whatever ended it will not pass by itself (``Runtime.spawn``)."""
    config = uvicorn.Config(
        app,
        host=host or runtime.settings.http.host,
        port=port,
        access_log=False,
        log_config=None,
        lifespan="off",
        limit_concurrency=2048,
        timeout_graceful_shutdown=10,
    )
    server = GracefulServer(config)

    def on_stopped(_name: str) -> None:
        server.should_exit = True  # make way for a process that does its job

    runtime.on_stopped = on_stopped
    for name in runtime.stopped:  # ended before the server started
        on_stopped(name)
    freeze_heap()
    try:
        await server.serve()
    finally:
        await runtime.close()
        # The spans still queued are exported (in a thread: the exporter's HTTP is blocking).
        await asyncio.to_thread(tracing.shutdown)
    return 1 if runtime.stopped else 0
