"""Answer caches. Keys carry the model version, so a new version never reads old answers.

A cache never fails a request: errors are counted, logged at most once per interval, and the
request is answered uncached.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict

from hashrec.service import metrics

log = logging.getLogger(__name__)


class AnswerCache(ABC):
    """An async key -> bytes cache."""

    name = "cache"

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss (or when the cache is unavailable)."""

    @abstractmethod
    async def set(self, key: str, value: bytes) -> None:
        """Store a value under the cache's TTL; failures are swallowed and counted."""

    async def close(self) -> None:
        """Release connections (nothing to do by default)."""


class NoCache(AnswerCache):
    """Caching turned off."""

    name = "none"

    async def get(self, key: str) -> bytes | None:
        return None

    async def set(self, key: str, value: bytes) -> None:
        return None


class InProcessCache(AnswerCache):
    """A bounded LRU with a time-to-live, local to one worker process.

    Parameters
    ----------
    max_entries : int
    ttl_s : float
    """

    name = "memory"

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        return self._lookup(key, count_miss=True)

    def peek(self, key: str) -> bytes | None:
        """``get`` without awaiting and without counting a miss (the caller falls back to ``get``)."""
        return self._lookup(key, count_miss=False)

    def _lookup(self, key: str, count_miss: bool) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            if entry is not None:
                del self._entries[key]
            self.misses += count_miss
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    async def set(self, key: str, value: bytes) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache(AnswerCache):
    """Redis through redis-py asyncio (hiredis parser), short timeouts, TTL on every key.

    When Redis is down or slow, calls fail fast (``timeout_s``), the request goes on uncached,
    and after a failure the cache stays quiet for ``retry_after_s`` before trying Redis again,
    so a dead Redis costs one timeout per interval, not one per request.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    ttl_s : float
    timeout_s : float
        Socket connect and read timeout.
    retry_after_s : float
        Back-off after a failure.
    """

    name = "redis"

    def __init__(self, url: str, ttl_s: float, timeout_s: float = 0.05, retry_after_s: float = 1.0) -> None:
        import redis.asyncio as redis

        super().__init__()
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._last_log = 0.0
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            max_connections=64,
            health_check_interval=0,
        )

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, err: Exception) -> None:
        self.errors += 1
        metrics.CACHE_ERRORS.inc()
        now = time.monotonic()
        self._down_until = now + self.retry_after_s
        if now - self._last_log >= 10.0:
            self._last_log = now
            log.warning("redis cache unavailable, answering uncached: %s", err)

    async def get(self, key: str) -> bytes | None:
        if not self._available():
            self.misses += 1
            return None
        try:
            value = await self.client.get(key)
        except Exception as err:  # any Redis/network error degrades to a miss
            self._failed(err)
            self.misses += 1
            return None
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return value if isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes) -> None:
        if not self._available():
            return
        try:
            await self.client.set(key, value, px=self.ttl_ms)
        except Exception as err:
            self._failed(err)

    async def close(self) -> None:
        await self.client.aclose()
