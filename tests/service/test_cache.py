"""Answer caches: one contract run over every backend (in-process and Redis), then what is Redis's own."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hashrec.service import metrics
from hashrec.service.cache import AnswerCache, InProcessCache, NoCache, RedisCache


def run(coroutine):
    return asyncio.run(coroutine)


class CacheContract:
    """What every answer cache promises; subclasses make the cache with ``make(ttl_s)``."""

    def make(self, ttl_s: float = 60.0) -> AnswerCache:
        raise NotImplementedError

    def test_a_value_set_is_got_back_and_counted_as_a_hit(self):
        async def check() -> None:
            cache = self.make()
            await cache.set("contract:k", b"v\x00\xff")
            assert await cache.get("contract:k") == b"v\x00\xff"
            assert (cache.hits, cache.misses, cache.errors) == (1, 0, 0)
            await cache.close()

        run(check())

    def test_an_unknown_key_is_a_counted_miss(self):
        async def check() -> None:
            cache = self.make()
            assert await cache.get("contract:never-set") is None
            assert (cache.hits, cache.misses) == (0, 1)
            await cache.close()

        run(check())

    def test_a_value_is_replaced_and_expires_after_its_ttl(self):
        async def check() -> None:
            cache = self.make(ttl_s=0.05)
            await cache.set("contract:t", b"1")
            await cache.set("contract:t", b"2")
            assert await cache.get("contract:t") == b"2"
            await asyncio.sleep(0.15)
            assert await cache.get("contract:t") is None
            await cache.close()

        run(check())


class TestInProcessCache(CacheContract):
    def make(self, ttl_s: float = 60.0) -> AnswerCache:
        return InProcessCache(max_entries=100, ttl_s=ttl_s)

    def test_lru_evicts_the_least_recently_used(self):
        async def check() -> None:
            cache = InProcessCache(max_entries=2, ttl_s=60)
            await cache.set("a", b"1")
            await cache.set("b", b"2")
            assert await cache.get("a") == b"1"  # a is now the most recent
            await cache.set("c", b"3")
            assert await cache.get("b") is None and await cache.get("a") == b"1"
            assert len(cache) == 2

        run(check())


class TestRedisCache(CacheContract):
    @pytest.fixture(autouse=True)
    def _redis(self, redis_cache_url):
        self.url = redis_cache_url

    def make(self, ttl_s: float = 60.0) -> AnswerCache:
        return RedisCache(self.url, ttl_s=ttl_s, timeout_s=1.0)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_redis_is_a_miss_counted_in_the_errors_metric():
    before = metrics.CACHE_ERRORS._value.get()

    async def check() -> None:
        cache = RedisCache(f"redis://127.0.0.1:{_closed_port()}/0", ttl_s=60, retry_after_s=0.0)
        assert await cache.get("k") is None
        await cache.set("k", b"v")
        assert cache.errors == 2 and cache.misses == 1
        await cache.close()

    run(check())
    assert metrics.CACHE_ERRORS._value.get() - before == 2


def test_no_cache_never_answers():
    async def check() -> None:
        cache = NoCache()
        await cache.set("k", b"v")
        assert await cache.get("k") is None

    run(check())


def test_an_oom_reply_is_counted_in_the_errors_metric(tmp_path):
    """A Redis at its memory limit (noeviction) answers SET with an OOM error: counted, uncached."""
    import redis

    from tests.service.redis_server import private_redis_or_skip

    port, process = private_redis_or_skip(str(tmp_path), "to give it a memory limit")
    try:
        admin = redis.Redis(port=port)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # below what it uses already: every write is refused
        before = metrics.CACHE_ERRORS._value.get()

        async def check() -> None:
            cache = RedisCache(f"redis://127.0.0.1:{port}/0", ttl_s=60, retry_after_s=0.0)
            await cache.set("k", b"v")
            assert cache.errors == 1
            await cache.close()

        run(check())
        assert metrics.CACHE_ERRORS._value.get() - before == 1
    finally:
        process.terminate()
        process.wait()
