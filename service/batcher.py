"""Micro-batching: known-user queries that arrive within a short window share one search.

A request's search waits at most ``window_s`` (or until ``max_batch`` queries are pending) and then
runs with the others in one :meth:`Recommender.for_users` call: one faiss batch scan and one
vectorized rerank instead of one each. Queries group by what the batched call shares (recommender,
k, exclude_seen, candidates); the answers are those of the unbatched call.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
from hashrec.retrieval.recommender import Pairs, Recommender

GroupKey = tuple[int, int, bool, int | None]


@dataclass
class _Group:
    recommender: Recommender
    rows: list[int] = field(default_factory=list)
    futures: list[asyncio.Future[Pairs]] = field(default_factory=list)


class MicroBatcher:
    """Gathers single-user searches for ``window_s`` seconds into batched searches.

    Parameters
    ----------
    window_s : float
        Longest a query waits for others, in seconds.
    max_batch : int
        Pending queries that trigger the search at once.
    """

    def __init__(self, window_s: float, max_batch: int) -> None:
        self.window_s = window_s
        self.max_batch = max_batch
        self._pending: dict[GroupKey, _Group] = {}
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0  # batched searches run and queries answered, for tests
        self.queries = 0

    async def for_user(
        self, recommender: Recommender, row: int, k: int, exclude_seen: bool, candidates: int | None
    ) -> Pairs:
        """The answer of ``recommender.for_users([row], ...)``, computed in a shared batch."""
        loop = asyncio.get_running_loop()
        key = (id(recommender), k, exclude_seen, candidates)
        group = self._pending.get(key)
        if group is None:
            group = self._pending[key] = _Group(recommender)
        future: asyncio.Future[Pairs] = loop.create_future()
        group.rows.append(row)
        group.futures.append(future)
        self._count += 1
        if self._count >= self.max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self.flush)
        return await future

    def flush(self) -> None:
        """Run every pending group now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending, self._count = self._pending, {}, 0
        for (_, k, exclude_seen, candidates), group in pending.items():
            self.batches += 1
            self.queries += len(group.rows)
            try:
                answers = group.recommender.for_users(
                    np.asarray(group.rows, dtype=np.int64), k, exclude_seen, None, candidates
                )
            except Exception as err:  # every waiter gets the failure, none hangs
                for future in group.futures:
                    if not future.done():
                        future.set_exception(err)
                continue
            for future, answer in zip(group.futures, answers, strict=True):
                if not future.done():  # a cancelled request (client gone) is skipped
                    future.set_result(answer)
