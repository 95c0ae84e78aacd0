"""Cache classes: LRU + TTL, and the tier in front of a shared cache."""

from __future__ import annotations

import asyncio

from hashrec.service.cache import AnswerCache, InProcessCache, TieredCache


class CountingCache(AnswerCache):
    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, bytes] = {}
        self.gets = 0

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        return self.data.get(key)

    async def set(self, key: str, value: bytes) -> None:
        self.data[key] = value


def test_lru_evicts_oldest_and_ttl_expires():
    async def run() -> None:
        cache = InProcessCache(max_entries=2, ttl_s=60)
        await cache.set("a", b"1")
        await cache.set("b", b"2")
        assert await cache.get("a") == b"1"  # a is now the most recent
        await cache.set("c", b"3")
        assert await cache.get("b") is None and await cache.get("a") == b"1"
        short = InProcessCache(max_entries=10, ttl_s=0.01)
        await short.set("x", b"1")
        await asyncio.sleep(0.03)
        assert await short.get("x") is None and len(short) == 0

    asyncio.run(run())


def test_tier_answers_hot_keys_without_the_far_cache():
    async def run() -> None:
        far = CountingCache()
        tiered = TieredCache(InProcessCache(100, 60), far)
        await tiered.set("k", b"v")
        assert await tiered.get("k") == b"v" and far.gets == 0
        far.data["only-far"] = b"w"
        assert await tiered.get("only-far") == b"w" and far.gets == 1
        assert await tiered.get("only-far") == b"w" and far.gets == 1  # now held near
        assert (tiered.hits, tiered.misses) == (3, 0)

    asyncio.run(run())
