"""A wait with a time limit never loses a cancellation (``leadflow dev`` hung on Ctrl-C when
its SLA sweep's ``asyncio.wait_for`` swallowed one)."""

from __future__ import annotations

import asyncio

from shared.waits import GrowingPoll, woken


async def test_woken_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert not await woken(event, 0.01)
    event.set()
    assert await woken(event, 0.01)


async def test_a_cancel_that_arrives_as_the_event_is_set_stops_a_waiting_loop() -> None:
    event, waiting = asyncio.Event(), asyncio.Event()

    async def sweep() -> None:
        while True:
            waiting.set()
            await woken(event, 60)
            event.clear()

    task = asyncio.create_task(sweep())
    await waiting.wait()
    # The same moment: the event's waiter and the task are both woken, as when a clock opens
    # while the process stops. asyncio.wait_for on Python 3.11 returned the event's result and
    # the cancellation was lost.
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)  # a bound for the failure, not a sync
    assert task in done and task.cancelled()


def test_a_growing_poll_doubles_after_each_empty_poll_up_to_its_longest() -> None:
    poll = GrowingPoll(0.1, 1.0)
    seen = [poll.seconds]
    for _ in range(5):
        poll.empty()
        seen.append(poll.seconds)
    assert seen == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    poll.found()
    assert poll.seconds == 0.1


def test_a_growing_poll_whose_longest_is_its_shortest_keeps_one_interval() -> None:
    for longest in (0.1, 0.05):  # a longest below the shortest is the shortest
        poll = GrowingPoll(0.1, longest)
        poll.empty()
        poll.empty()
        assert poll.seconds == 0.1
