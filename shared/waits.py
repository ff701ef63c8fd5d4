"""Waiting with a time limit without losing a cancellation.

``asyncio.wait_for`` on Python 3.11 can lose one: a task cancelled at the moment the event it
waits for is set (or the work it waits on finishes) gets that result instead of
``CancelledError``, so a loop that waits again never stops. ``leadflow dev`` hung on Ctrl-C that
way in its SLA sweep's wait, and a test in its webhook dispatcher's. ``asyncio.timeout`` keeps the
cancellation; every wait with a limit uses it.
"""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Whether ``event`` was set within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
