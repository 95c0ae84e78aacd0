"""Micro-batching: answers equal the unbatched ones, batches really form, failures reach every waiter."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from hashrec.retrieval.recommender import Recommender
from hashrec.retrieval.search import TwoStageSearcher
from hashrec.service.app import create_app
from hashrec.service.batcher import MicroBatcher
from hashrec.service.settings import Settings


@pytest.fixture
def recommender(model):
    return Recommender(model, TwoStageSearcher(model, oversample=10))


def gather(batcher, recommender, queries):
    async def main():
        return await asyncio.gather(*(batcher.for_user(recommender, *query) for query in queries))

    return asyncio.run(main())


def test_batched_answers_equal_unbatched(recommender):
    batcher = MicroBatcher(window_s=0.05, max_batch=1000)
    # rows, k, exclude_seen, candidates: three groups that cannot share one search
    queries = [(row, 10, True, None) for row in range(40)]
    queries += [(row, 5, False, None) for row in range(0, 40, 3)]
    queries += [(row, 10, True, 30) for row in range(0, 40, 7)]
    answers = gather(batcher, recommender, queries)
    for (row, k, exclude_seen, candidates), answer in zip(queries, answers, strict=True):
        assert answer == recommender.for_users(np.array([row]), k, exclude_seen, None, candidates)[0]
    assert (batcher.batches, batcher.queries) == (3, len(queries))


def test_a_full_batch_does_not_wait_for_the_window(recommender):
    batcher = MicroBatcher(window_s=3600, max_batch=8)

    async def main():
        calls = (batcher.for_user(recommender, row, 10, True, None) for row in range(8))
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=30)

    assert len(asyncio.run(main())) == 8 and batcher.batches == 1


class Failing(Recommender):
    def for_users(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("search broke")


def test_a_failed_search_reaches_every_waiter(model):
    batcher = MicroBatcher(window_s=0.01, max_batch=100)
    failing = Failing(model, TwoStageSearcher(model))

    async def main():
        calls = (batcher.for_user(failing, row, 10, True, None) for row in range(5))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and str(r) == "search broke" for r in results)


def test_a_cancelled_waiter_leaves_the_others_answered(recommender):
    batcher = MicroBatcher(window_s=0.05, max_batch=100)

    async def main():
        tasks = [asyncio.create_task(batcher.for_user(recommender, row, 10, True, None)) for row in range(6)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert isinstance(results[2], asyncio.CancelledError)
    for row in (0, 1, 3, 4, 5):
        assert results[row] == recommender.for_users(np.array([row]), 10)[0]


def test_the_http_answers_with_batching_equal_those_without(store, arrays):
    """Concurrent /v1/recommend calls through the batcher answer as the plain path does."""
    users = [str(u) for u in arrays["user_ids"][:24]]

    async def answers(window_ms: float) -> tuple[list[dict], object]:
        settings = Settings(
            store=store.root, poll_interval_s=0, cache_enabled=False, microbatch_window_ms=window_ms
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                calls = [client.post("/v1/recommend", json={"user_id": u, "k": 10}) for u in users]
                calls += [client.post("/v1/recommend", json={"user_id": "nobody", "k": 10})]
                responses = await asyncio.gather(*calls)
            assert all(r.status_code == 200 for r in responses)
            return [r.json() for r in responses], app.state.service.batcher

    plain, no_batcher = asyncio.run(answers(0))
    batched, batcher = asyncio.run(answers(20))
    assert no_batcher is None
    assert [a["items"] for a in batched] == [a["items"] for a in plain]
    assert batched[-1]["fallback"] is True
    assert batcher.queries == len(users) and batcher.batches < len(users)
