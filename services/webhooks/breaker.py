"""Pure endpoint health: the circuit breaker and the "failing for days" rule.

After ``threshold`` consecutive failures the circuit opens: nothing is sent to the endpoint until
``paused_until``; then one message probes it (half-open). Each further failure doubles the pause,
up to ``MAX_PAUSE``. A success closes the circuit. An endpoint that has not succeeded for
``disable_after`` is disabled. A slow-down answer pauses the endpoint for its ``Retry-After``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MAX_PAUSE = timedelta(minutes=10)


@dataclass(frozen=True)
class Health:
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    paused_until: datetime | None = None

    def is_open(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    def is_half_open(self, threshold: int) -> bool:
        """Past the threshold: one probe at a time until a success closes the circuit."""
        return self.consecutive_failures >= threshold


@dataclass(frozen=True)
class Policy:
    threshold: int
    cooldown: timedelta
    disable_after: timedelta


def after_success() -> Health:
    return Health()


def after_failure(
    health: Health, now: datetime, policy: Policy, *, retry_after: float | None = None
) -> Health:
    """A failure while the circuit is already open was sent before it opened: it neither counts
    nor lengthens the pause (only failed probes do)."""
    failing_since = health.failing_since or now
    if health.is_open(now) and health.consecutive_failures >= policy.threshold:
        paused = health.paused_until
        if retry_after is not None:
            paused = _later(paused, now + timedelta(seconds=retry_after))
        return replace(health, failing_since=failing_since, paused_until=paused)
    failures = health.consecutive_failures + 1
    paused = health.paused_until if health.is_open(now) else None
    if failures >= policy.threshold:
        pause = min(policy.cooldown * 2 ** (failures - policy.threshold), MAX_PAUSE)
        paused = _later(paused, now + pause)
    if retry_after is not None:
        paused = _later(paused, now + timedelta(seconds=retry_after))
    return replace(
        health,
        consecutive_failures=failures,
        failing_since=failing_since,
        paused_until=paused,
    )


def should_disable(health: Health, now: datetime, policy: Policy) -> bool:
    return health.failing_since is not None and now - health.failing_since >= policy.disable_after


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current
