"""Pure retry arithmetic: what an answer means, and when the next attempt is due.

``schedule[i]`` is the wait before attempt ``i + 1`` (Svix: now, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 10 h). After the last attempt fails the message is exhausted: kept, and replayable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Verdict(StrEnum):
    DELIVERED = "delivered"  # 2xx
    GONE = "gone"  # 410: the endpoint asks to be disabled
    SLOW_DOWN = "slow_down"  # 429, 502, 504: back off, honour Retry-After
    RETRY = "retry"  # any other status, a timeout or a connection failure
    REFUSED = "refused"  # not attempted: the target resolved to a forbidden address
    REJECTED = "rejected"  # a CRM refused this record for good (a bad property): not retried


SLOW_DOWN_STATUSES = frozenset({429, 502, 504})


def classify(status: int | None) -> Verdict:
    """The verdict on an HTTP answer; ``None`` means no answer (timeout, connection error)."""
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status == 410:
        return Verdict.GONE
    if status in SLOW_DOWN_STATUSES:
        return Verdict.SLOW_DOWN
    return Verdict.RETRY


def retry_after_s(header: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; junk is ignored."""
    if header is None or not header.strip():
        return None
    value = header.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_due(
    attempts_made: int,
    now: datetime,
    *,
    schedule: Sequence[float],
    jitter: float,
    rand: float,
    retry_after: float | None = None,
    max_retry_after: float = 86_400.0,
) -> datetime | None:
    """When attempt ``attempts_made + 1`` is due, or ``None`` when the schedule is spent.

    ``rand`` in [0, 1) spreads the wait by ± ``jitter`` of it, so endpoints that failed together
    are not retried together. A ``Retry-After`` longer than the scheduled wait wins (capped).
    """
    if attempts_made >= len(schedule):
        return None
    wait = schedule[attempts_made] * (1 + jitter * (2 * rand - 1))
    if retry_after is not None:
        wait = max(wait, min(retry_after, max_retry_after))
    return now + timedelta(seconds=max(0.0, wait))
