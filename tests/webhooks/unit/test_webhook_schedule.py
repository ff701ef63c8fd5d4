"""Retry arithmetic and the circuit breaker: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.webhooks import breaker
from services.webhooks.schedule import Verdict, classify, next_due, retry_after_s

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SVIX = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (299, Verdict.DELIVERED),
        (301, Verdict.RETRY),
        (400, Verdict.RETRY),
        (410, Verdict.GONE),
        (429, Verdict.SLOW_DOWN),
        (500, Verdict.RETRY),
        (502, Verdict.SLOW_DOWN),
        (503, Verdict.RETRY),
        (504, Verdict.SLOW_DOWN),
        (None, Verdict.RETRY),
    ],
)
def test_each_answer_has_its_verdict(status: int | None, verdict: Verdict) -> None:
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("attempts_made", "wait_s"),
    [(0, 0), (1, 5), (2, 300), (3, 1800), (4, 7200), (5, 18000), (6, 36000), (7, 36000)],
)
def test_without_jitter_the_svix_schedule_is_followed(attempts_made: int, wait_s: float) -> None:
    due = next_due(attempts_made, NOW, schedule=SVIX, jitter=0.2, rand=0.5)
    assert due == NOW + timedelta(seconds=wait_s)


def test_after_the_last_attempt_the_message_is_exhausted() -> None:
    assert next_due(8, NOW, schedule=SVIX, jitter=0.2, rand=0.5) is None


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.999999, 1.2)])
def test_jitter_spreads_the_wait_by_at_most_its_share(rand: float, factor: float) -> None:
    due = next_due(2, NOW, schedule=SVIX, jitter=0.2, rand=rand)
    assert due is not None
    assert (due - NOW).total_seconds() == pytest.approx(300 * factor, abs=1e-3)


@pytest.mark.parametrize(
    ("retry_after", "cap", "wait_s"),
    [(60, 86400, 60), (1, 86400, 5), (999999, 3600, 3600)],
)
def test_a_longer_retry_after_wins_up_to_the_cap(
    retry_after: float, cap: float, wait_s: float
) -> None:
    due = next_due(
        1, NOW, schedule=SVIX, jitter=0, rand=0.5, retry_after=retry_after, max_retry_after=cap
    )
    assert due == NOW + timedelta(seconds=wait_s)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Mon, 23 Nov 2026 12:01:30 GMT", 90.0),
        ("Mon, 23 Nov 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    assert retry_after_s(header, NOW) == seconds


POLICY = breaker.Policy(
    threshold=3, cooldown=timedelta(seconds=30), disable_after=timedelta(days=5)
)


def _probed(n: int) -> tuple[breaker.Health, datetime]:
    """``n`` failures, each sent as soon as the circuit allowed it; and the last one's time."""
    health, now = breaker.Health(), NOW
    for _ in range(n):
        now = max(now, health.paused_until or now)
        health = breaker.after_failure(health, now, POLICY)
    return health, now


@pytest.mark.parametrize(
    ("failures", "pause_s"),
    [(1, None), (2, None), (3, 30), (4, 60), (5, 120), (9, 600), (20, 600)],
)
def test_the_circuit_opens_at_the_threshold_and_each_failed_probe_doubles_the_pause(
    failures: int, pause_s: float | None
) -> None:
    health, last = _probed(failures)
    assert health.consecutive_failures == failures
    assert health.is_half_open(POLICY.threshold) is (failures >= 3)
    expected = None if pause_s is None else last + timedelta(seconds=pause_s)
    assert health.paused_until == expected


def test_failures_sent_before_the_circuit_opened_do_not_lengthen_the_pause() -> None:
    health = breaker.Health()
    for _ in range(8):  # eight requests were in flight together; all fail at once
        health = breaker.after_failure(health, NOW, POLICY)
    assert health.consecutive_failures == 3
    assert health.paused_until == NOW + timedelta(seconds=30)


def test_a_success_closes_the_circuit() -> None:
    assert breaker.after_success() == breaker.Health()


def test_slow_down_pauses_the_endpoint_for_its_retry_after() -> None:
    health = breaker.after_failure(breaker.Health(), NOW, POLICY, retry_after=45)
    assert health.paused_until == NOW + timedelta(seconds=45)
    assert health.is_open(NOW) and not health.is_open(NOW + timedelta(seconds=45))


def test_failing_since_is_the_first_failure_and_days_of_it_disable() -> None:
    first = breaker.after_failure(breaker.Health(), NOW - timedelta(days=5), POLICY)
    later = breaker.after_failure(first, NOW, POLICY)
    assert later.failing_since == NOW - timedelta(days=5)
    assert breaker.should_disable(later, NOW, POLICY)
    assert not breaker.should_disable(later, NOW - timedelta(seconds=1), POLICY)
    assert not breaker.should_disable(breaker.Health(), NOW, POLICY)
