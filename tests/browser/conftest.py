"""What the browser tests need: Debian's Chromium (Playwright cannot download its own browsers
here: ``make test`` installs the package as root), and a real HTTP server on 127.0.0.1.

A missing Chromium fails the test with what to do, under ``CI=true`` and outside it: never a
skip, so a run without the browser cannot pass for a run that tested it."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from tests.support.common import eventually

CHROMIUM = Path(os.environ.get("LEADFLOW_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        where = "CI must run the browser tests" if os.environ.get("CI") else "install it"
        pytest.fail(
            f"no Chromium at {CHROMIUM} ({where}): run `make test` as root, or "
            "`apt-get install -y chromium` (Playwright's own browser downloads do not work here)",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port) until the block ends; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), within=10)
        assert not task.done(), "the server stopped at start-up"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def watched_page(chromium: Path) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page of headless Chromium (1280×900), and the problems seen on it as they happen: script
    errors, failed requests (4xx, 5xx) and what the Content-Security-Policy blocked."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox"], headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            yield page, problems
        finally:
            await browser.close()
