"""Checksum-valid but unusual versions: refused with a reason before they are promoted or served,
and never able to stop the store follower (issue 24, section 2)."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from hashrec.model_store import CorruptVersion, ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.schema import check_recommender
from hashrec.service.app import create_app
from hashrec.service.settings import Settings
from typer.testing import CliRunner

from hashrec.cli import app as cli
from tests.conftest import planted_arrays, publish_arrays

#: manifest configs that pass the checksums but not what the service reads
ODD_CONFIGS = {
    "quantizer as a string": {"quantizer": "sign"},
    "quantizer null": {"quantizer": None},
    "unknown transform": {"quantizer": {"transform": "pca"}},
}


def wrong_projection(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays with a code_projection of the wrong width (it must be (dim + 1, bits))."""
    out = dict(arrays)
    out["code_projection"] = np.ones((3, 8), np.float32)
    return out


def odd_versions(store: ModelStore) -> dict[str, str]:
    """name of the oddity -> version published with it (not current)."""
    arrays = planted_arrays()
    made = {
        name: publish_arrays(store, arrays, config=config, make_current=False)  # type: ignore[arg-type]
        for name, config in ODD_CONFIGS.items()
    }
    made["code_projection of the wrong shape"] = publish_arrays(
        store, wrong_projection(arrays), make_current=False
    )
    return made


@pytest.mark.parametrize("oddity", [*ODD_CONFIGS, "code_projection of the wrong shape"])
def test_the_schema_check_refuses_what_the_service_could_not_read(tmp_path, oddity):
    store = ModelStore(tmp_path / "store")
    version = odd_versions(store)[oddity]
    with pytest.raises(CorruptVersion, match=version):
        check_recommender(store.open(version))
    with pytest.raises(CorruptVersion, match=version):
        ServingModel.from_artifact(store.open(version))


def test_store_promote_refuses_a_version_the_service_could_not_load(tmp_path):
    store = ModelStore(tmp_path / "store")
    good = publish_arrays(store, planted_arrays())
    bad = odd_versions(store)["quantizer as a string"]
    result = CliRunner().invoke(cli, ["store", "promote", bad, "--store", str(store.root)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and bad in result.stderr
    assert result.stderr.count("\n") == 1
    assert store.current() == good


@pytest.mark.anyio
async def test_odd_versions_are_refused_and_the_follower_lives_on(tmp_path):
    store = ModelStore(tmp_path / "store")
    good = publish_arrays(store, planted_arrays())
    app = create_app(Settings(store=store.root, poll_interval_s=0.02, cache_enabled=False))
    async with app.router.lifespan_context(app):
        state = app.state.service
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for oddity, version in odd_versions(store).items():
                store._move_ref("current", version, "test")  # as a promote that skipped the check
                for _ in range(100):
                    await asyncio.sleep(0.02)
                    if version in state.refused:
                        break
                assert version in state.refused, f"{oddity}: not refused (the follower died?)"
                reload = await client.post("/admin/reload", json={"version": version})
                assert reload.status_code in (404, 409, 422), oddity  # refused with a reason, never a 500
                answer = await client.post("/v1/recommend", json={"user_id": "u1", "k": 5})
                assert answer.status_code == 200 and answer.json()["model_version"] == good
            newer = publish_arrays(store, planted_arrays(seed=3))  # a good version after them all
            for _ in range(100):
                await asyncio.sleep(0.02)
                if state.loaded.version == newer:
                    break
            assert state.loaded.version == newer, "the follower stopped following the store"


@pytest.mark.anyio
async def test_any_error_while_loading_refuses_the_candidate_and_keeps_following(tmp_path, monkeypatch):
    """Not only the store's own errors: a bug while loading refuses that version, and an error
    while polling is logged and the next poll goes on."""
    import hashrec.service.state as state_module

    store = ModelStore(tmp_path / "store")
    good = publish_arrays(store, planted_arrays())
    app = create_app(Settings(store=store.root, poll_interval_s=0.02, cache_enabled=False))
    async with app.router.lifespan_context(app):
        state = app.state.service
        real_smoke, real_current = state_module.smoke_test, state.store.current

        def broken_smoke(recommender):  # type: ignore[no-untyped-def]
            raise AttributeError("'str' object has no attribute 'get'")

        monkeypatch.setattr(state_module, "smoke_test", broken_smoke)
        bad = publish_arrays(store, planted_arrays(seed=1))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if bad in state.refused:
                break
        assert "no attribute" in state.refused[bad] and state.loaded.version == good
        monkeypatch.setattr(state_module, "smoke_test", real_smoke)
        failures = iter([RuntimeError("poll failed")])

        def flaky_current() -> str | None:
            for err in failures:
                raise err
            return real_current()

        monkeypatch.setattr(state.store, "current", flaky_current)
        newer = publish_arrays(store, planted_arrays(seed=2))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if state.loaded.version == newer:
                break
        assert state.loaded.version == newer


@pytest.mark.anyio
async def test_a_version_without_a_code_projection_serves_visitors_popular_items(tmp_path):
    """Such a version cannot code a visitor's history: popular items (fallback), or a 422 in
    strict mode, never a 500; and its smoke test does not refuse it for that."""
    store = ModelStore(tmp_path / "store")
    arrays = planted_arrays()
    del arrays["code_projection"]
    version = publish_arrays(store, arrays)
    app = create_app(Settings(store=store.root, poll_interval_s=0, cache_enabled=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            visitor = {"history": ["i1", "i2"], "k": 5}
            answer = await client.post("/v1/recommend", json=visitor)
            assert answer.status_code == 200 and answer.json()["fallback"] is True
            assert answer.json()["model_version"] == version
            strict = await client.post("/v1/recommend", json={**visitor, "strict": True})
            assert strict.status_code == 422 and "cannot encode visitors" in strict.json()["detail"]


@pytest.mark.anyio
async def test_hashrec_version_and_admin_reload_resolve_an_alias_and_follow_it(tmp_path):
    store = ModelStore(tmp_path / "store")
    first = publish_arrays(store, planted_arrays())
    second = publish_arrays(store, planted_arrays(seed=1), make_current=False)
    store.promote(first, "production")
    settings = Settings(
        store=store.root, version="production", poll_interval_s=0.02, cache_enabled=False, admin_token="t"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state.service
        assert state.loaded is not None and state.loaded.version == first
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            store.promote(second, "production")  # the alias moves: the service follows it
            for _ in range(100):
                await asyncio.sleep(0.02)
                if state.loaded.version == second:
                    break
            assert state.loaded.version == second
            store.promote(first, "canary")
            reload = await client.post(
                "/admin/reload", json={"version": "canary"}, headers={"authorization": "Bearer t"}
            )
            assert reload.status_code == 200 and reload.json()["model_version"] == first


@pytest.mark.anyio
async def test_garbage_under_an_answer_key_is_a_counted_cache_error_not_a_broken_body(tmp_path):
    """The cached value is spliced into the answer; anything that is not an answer's JSON tail
    (written by another program, or cut short) is a miss and a cache error."""
    from hashrec.service import metrics

    store = ModelStore(tmp_path / "store")
    publish_arrays(store, planted_arrays())
    app = create_app(Settings(store=store.root, poll_interval_s=0))
    async with app.router.lifespan_context(app):
        cache = app.state.service.cache
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = {"user_id": "u1", "k": 5}
            first = await client.post("/v1/recommend", json=body)
            assert first.status_code == 200 and first.json()["cached"] is False
            (key,) = list(cache._entries)
            for garbage in (b"garbage", b'{"fallback":false,"items":[{"item_id"', b""):
                await cache.set(key, garbage)
                before = metrics.CACHE_ERRORS._value.get()
                again = await client.post("/v1/recommend", json=body)
                assert again.status_code == 200 and again.json()["items"] == first.json()["items"]
                assert again.json()["cached"] is False
                assert metrics.CACHE_ERRORS._value.get() - before == 1
