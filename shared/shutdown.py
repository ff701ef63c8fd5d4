"""Shutdown steps that must not hang the process: a client's goodbye to a broker that is gone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger(__name__)


async def bounded(work: Awaitable[Any], what: str, *, seconds: float = 10.0) -> None:
    """Await shutdown work for at most ``seconds``; log and go on past that."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.warning("%s took longer than %.0fs; going on without it", what, seconds)
