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


class GrowingPoll:
    """A poll's interval: twice as long after each poll that found nothing, up to ``longest``;
    back to ``shortest`` after one that found work or a wake-up. With ``longest`` equal to
    ``shortest``, a fixed interval."""

    def __init__(self, shortest: float, longest: float) -> None:
        self.shortest = shortest
        self.longest = max(shortest, longest)
        self.seconds = shortest
        """The wait before the next poll."""

    def found(self) -> None:
        self.seconds = self.shortest

    def empty(self) -> None:
        self.seconds = min(self.seconds * 2, self.longest)
