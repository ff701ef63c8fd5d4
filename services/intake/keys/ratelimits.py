"""Rate limits on posts: a sliding window per limit and caller, counted in this process's memory
or in Redis, which every intake replica then shares (``intake.rate_limit_storage``).

A rate limiter must not take intake down: while Redis cannot be reached (refused, timed out, an
error), posts are let through unlimited, counted in ``leadflow_intake_rate_limit_unchecked_total``
and warned about once per outage; Redis is tried again every ``rate_limit_storage_retry_s``, so an
outage costs a post at most one ``rate_limit_storage_timeout_s`` per retry, not one each. The
storage URL is shown with its password (or any credentials) replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from prometheus_client import Counter
from redis.asyncio import ConnectionPool

from services.intake.settings import IntakeSettings

log = logging.getLogger(__name__)

UNCHECKED = Counter(
    "leadflow_intake_rate_limit_unchecked_total",
    "Posts let through without a rate-limit check: the rate-limit storage was unreachable",
    ["limit"],
)
KEY_PREFIX = "leadflow"
"""Every counter's Redis key starts with it (``leadflow:LIMITER/…``)."""


class RateLimits:
    def __init__(self, settings: IntakeSettings) -> None:
        url = settings.rate_limit_storage.get_secret_value() if settings.rate_limit_storage else ""
        self.shared = bool(url) and not url.startswith("memory://")
        self.pool = redis_pool(url) if self.shared else None
        self.storage: Storage = open_storage(url, self.pool) if self.pool else MemoryStorage()
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.where = shown(url) if self.shared else "memory://"
        self.timeout_s = settings.rate_limit_storage_timeout_s if self.shared else None
        self.retry_s = settings.rate_limit_storage_retry_s
        self._retry_at: float | None = None
        """While the storage is unreachable: when to try it again (``time.monotonic``)."""

    async def wait(self, item: RateLimitItem, kind: str, who: str) -> int | None:
        """Take one post from ``who``'s ``item`` limit: None when it is allowed (or cannot be
        checked), else the seconds until it would be."""
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            UNCHECKED.labels(kind).inc()
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                if await self.limiter.hit(item, kind, who):
                    wait = None
                else:
                    stats = await self.limiter.get_window_stats(item, kind, who)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
        except (StorageError, TimeoutError) as error:
            self._unreachable(error)
            UNCHECKED.labels(kind).inc()
            return None
        if self._retry_at is not None:
            self._retry_at = None
            log.warning("rate limit storage %s answers again: limits enforced", self.where)
        return wait

    def _unreachable(self, error: Exception) -> None:
        if self._retry_at is None:
            cause = error.storage_error if isinstance(error, StorageError) else error
            log.warning(
                "rate limit storage %s unreachable (%s): posts are not rate limited until it "
                "answers (tried again every %.1f s)",
                self.where,
                cause.__class__.__name__ if isinstance(cause, TimeoutError) else cause,
                self.retry_s,
            )
        self._retry_at = time.monotonic() + self.retry_s

    async def aclose(self) -> None:
        """Close the connections to Redis (memory: nothing to close)."""
        if self.pool is not None:
            await self.pool.disconnect()


def redis_pool(url: str) -> ConnectionPool:
    """Connections to the Redis of a ``redis://``, ``rediss://`` or ``redis+unix://`` URL;
    none is opened yet."""
    return ConnectionPool.from_url(url.replace("redis+unix://", "unix://", 1))


def open_storage(url: str, pool: ConnectionPool) -> Storage:
    """``limits``' async Redis storage over ``pool``, with the ``redis`` package's client
    (``redis.asyncio``; ``limits`` would pick ``coredis`` by default)."""
    options: dict[str, Any] = {"connection_pool": pool}
    storage = storage_from_string(
        "async+" + url,
        implementation="redispy",
        wrap_exceptions=True,  # every client error is a StorageError
        key_prefix=KEY_PREFIX,
        **options,
    )
    assert isinstance(storage, Storage)
    return storage


def shown(url: str) -> str:
    """``url`` for a log line: credentials replaced by ``***``, the query dropped."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    credentials = "***@" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{credentials}{host}{parts.path}"
