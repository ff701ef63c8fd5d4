"""Waiting with a time limit without losing a cancellation.

``asyncio.wait_for`` on Python 3.11 can lose one: a task cancelled while its wait is timing out
gets ``TimeoutError`` instead of ``CancelledError`` (and the awaited result, when that finished
at the same moment), so a loop that waits again never stops. ``leadflow dev`` once hung on
Ctrl-C that way, in its SLA sweep's wait. ``asyncio.timeout`` tells the two apart; every wait
with a limit uses it.
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
