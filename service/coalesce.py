"""Request coalescing: concurrent identical cache misses are computed once per process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Run ``compute()`` once per key while it is in flight; later callers await the same result."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}
        self.coalesced = 0

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return (result, leader) where leader is False for callers that joined a running call."""
        future = self._inflight.get(key)
        if future is not None:
            self.coalesced += 1
            return await asyncio.shield(future), False
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await compute()
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: followers re-raise it, no "never retrieved" warning
            raise
        else:
            future.set_result(result)
            return result, True
        finally:
            del self._inflight[key]
