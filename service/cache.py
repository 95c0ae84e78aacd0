"""Answer caches. Keys carry the model version, so a new version never reads old answers."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict


class AnswerCache(ABC):
    """An async key -> bytes cache; failures are the cache's problem, never the request's."""

    hits: int = 0
    misses: int = 0

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The cached value, or None on a miss."""

    @abstractmethod
    async def set(self, key: str, value: bytes) -> None:
        """Store a value under the cache's TTL."""

    async def close(self) -> None:
        """Release connections (nothing to do by default)."""


class NoCache(AnswerCache):
    """Caching turned off."""

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

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
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
