"""Hot reload under concurrent load, refused versions, Redis outages, request coalescing."""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx
import numpy as np
import pytest
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.pipeline import build_index
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.recommender import Recommender
from hashrec.retrieval.search import two_stage_searcher
from hashrec.service.app import create_app
from hashrec.service.coalesce import Coalescer
from hashrec.service.settings import Settings
from hashrec.service.state import ReloadRefused, smoke_test

from tests.conftest import planted_arrays
from tests.service.redis_server import (
    fast_failing_redis_settings,
    free_port,
    private_redis_or_skip,
    start_redis,
)


@pytest.fixture
def store_copy(trained, tmp_path):
    """A private copy of the trained store, so tests may publish and damage versions."""
    data, store = trained
    shutil.copytree(store.root, tmp_path / "store")
    return data, ModelStore(tmp_path / "store")


async def _serve(app):
    """Enter the app's lifespan and give an httpx client over ASGI."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _republish(store: ModelStore, data, seed: int) -> str:
    cfg = IndexConfig(
        encoder=EncoderConfig(name="mf", dim=16, epochs=1, batch_size=2048),
        quantizer=QuantizerConfig(bits=64),
        seed=seed,
        progress=False,
    )
    return str(build_index(data, store, cfg)["version"])


@pytest.mark.anyio
async def test_reload_under_load_fails_no_request_and_labels_versions_truthfully(store_copy):
    data, store = store_copy
    app = create_app(Settings(store=store.root, poll_interval_s=0, cache_enabled=False))
    users = [str(u) for u in data.user_ids[:50]]
    new_versions = [_republish(store, data, seed) for seed in (1, 2, 3)]
    store.set_current(store.list_versions()[0].version)  # start from the first version
    async with app.router.lifespan_context(app):
        state = app.state.service
        timeline = [(time.monotonic(), state.loaded.version)]
        responses: list[tuple[float, float, int, str | None]] = []
        async with await _serve(app) as client:

            async def one(user: str) -> None:
                started = time.monotonic()
                response = await client.post("/v1/recommend", json={"user_id": user, "k": 10})
                version = response.json().get("model_version") if response.status_code == 200 else None
                responses.append((started, time.monotonic(), response.status_code, version))

            async def load() -> None:
                for round_ in range(4):
                    await asyncio.gather(*(one(users[(round_ * 7 + i) % 50]) for i in range(75)))

            async def reloads() -> None:
                for version in new_versions:
                    await asyncio.sleep(0.01)
                    await state.reload(version)
                    timeline.append((time.monotonic(), version))

            await asyncio.gather(load(), reloads())
    assert len(responses) == 300
    assert all(status == 200 for _, _, status, _ in responses)
    for started, ended, _, version in responses:
        # The version was serving at some moment between the request's start and end.
        serving = [
            v
            for i, (t, v) in enumerate(timeline)
            if t <= ended and (i + 1 == len(timeline) or timeline[i + 1][0] >= started)
        ]
        assert version in serving


@pytest.mark.anyio
async def test_damaged_new_version_is_refused_and_old_keeps_serving(store_copy):
    data, store = store_copy
    old = store.current()
    app = create_app(Settings(store=store.root, poll_interval_s=0.05, cache_enabled=False))
    async with app.router.lifespan_context(app), await _serve(app) as client:
        bad = _republish(store, data, seed=9)  # becomes current; the poller will see it
        target = store.versions_dir / bad / "item_embeddings.npy"
        target.write_bytes(target.read_bytes()[:-4])  # truncated array
        for _ in range(40):
            await asyncio.sleep(0.05)
            if bad in app.state.service.refused:
                break
        assert "item_embeddings.npy" in app.state.service.refused[bad]
        response = await client.post("/v1/recommend", json={"user_id": str(data.user_ids[0])})
        assert response.status_code == 200 and response.json()["model_version"] == old
        assert 'hashrec_model_reloads_total{result="refused"}' in (await client.get("/metrics")).text


@pytest.mark.anyio
async def test_empty_store_becomes_ready_when_a_version_appears(trained, tmp_path):
    data, _ = trained
    store = ModelStore(tmp_path / "later")
    app = create_app(Settings(store=store.root, poll_interval_s=0.05))
    async with app.router.lifespan_context(app), await _serve(app) as client:
        assert (await client.get("/readyz")).status_code == 503
        version = _republish(store, data, seed=4)
        for _ in range(60):
            await asyncio.sleep(0.05)
            if (await client.get("/readyz")).status_code == 200:
                break
        assert (await client.get("/readyz")).json()["model_version"] == version


@pytest.mark.anyio
async def test_redis_outage_answers_uncached_then_caching_resumes(trained, tmp_path):
    data, store = trained
    port, redis = private_redis_or_skip(str(tmp_path), "to stop and restart it")
    settings = fast_failing_redis_settings(store.root, port)
    app = create_app(settings)
    user = {"user_id": str(data.user_ids[0]), "k": 5}
    try:
        async with app.router.lifespan_context(app), await _serve(app) as client:
            app.state.service.cache.retry_after_s = 0.1
            assert (await client.post("/v1/recommend", json=user)).json()["cached"] is False
            assert (await client.post("/v1/recommend", json=user)).json()["cached"] is True
            redis.terminate()
            redis.wait(timeout=10)
            for _ in range(20):
                response = await client.post("/v1/recommend", json=user)
                assert response.status_code == 200 and response.json()["cached"] is False
            assert app.state.service.cache.errors >= 1
            redis = start_redis(port, str(tmp_path))
            cached = False
            for _ in range(50):
                await asyncio.sleep(0.05)
                cached = (await client.post("/v1/recommend", json=user)).json()["cached"]
                if cached:
                    break
            assert cached, "caching did not resume after Redis came back"
    finally:
        redis.terminate()
        redis.wait(timeout=10)


@pytest.mark.anyio
async def test_unreachable_redis_never_fails_a_request(trained):
    data, store = trained
    settings = Settings(store=store.root, poll_interval_s=0, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    async with app.router.lifespan_context(app), await _serve(app) as client:
        for row in range(10):
            response = await client.post("/v1/recommend", json={"user_id": str(data.user_ids[row])})
            assert response.status_code == 200 and len(response.json()["items"]) == 20


@pytest.mark.anyio
async def test_concurrent_identical_misses_compute_once():
    coalescer: Coalescer[int] = Coalescer()
    calls = 0

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return 42

    results = await asyncio.gather(*(coalescer.run("same", compute) for _ in range(10)))
    assert calls == 1 and [value for value, _ in results] == [42] * 10
    assert sum(leader for _, leader in results) == 1 and coalescer.coalesced == 9
    assert (await coalescer.run("same", compute))[1] is True and calls == 2


@pytest.mark.anyio
async def test_coalesced_failure_reaches_every_caller():
    coalescer: Coalescer[int] = Coalescer()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("bad")

    results = await asyncio.gather(*(coalescer.run("k", boom) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_the_smoke_query_runs_both_search_paths_and_refuses_nan(monkeypatch):
    """Before a model serves, a batched and a single-user query run (so both compiled paths are
    ready before the first request); a model whose answers are not finite is refused."""
    arrays = planted_arrays()
    model = ServingModel.from_arrays("ok", arrays)
    called: list[str] = []
    for name in ("for_users", "for_user", "for_history", "similar"):
        original = getattr(Recommender, name)
        monkeypatch.setattr(
            Recommender,
            name,
            lambda self, *a, _f=original, _n=name, **kw: called.append(_n) or _f(self, *a, **kw),
        )
    smoke_test(Recommender(model, two_stage_searcher(model)))
    assert sorted(called) == ["for_history", "for_user", "for_users", "similar"]
    from hashrec.retrieval.kernels import _required

    # every fused kernel a request can reach is compiled (or loaded from numba's cache) by now,
    # so the first visitor does not compile on the event loop
    kernels = _required()
    assert all(
        kernels.__dict__[name].signatures for name in ("two_stage", "two_stage_user", "two_stage_query")
    )
    broken = dict(arrays, user_embeddings=arrays["user_embeddings"].copy())
    broken["user_embeddings"][0] = np.nan
    bad = ServingModel.from_arrays("bad", broken)
    with pytest.raises(ReloadRefused, match="smoke"):
        smoke_test(Recommender(bad, two_stage_searcher(bad)))
