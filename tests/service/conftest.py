"""Service fixtures: a small trained model in a store, and the two cache backends."""

from __future__ import annotations

import pytest
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.pipeline import build_index
from hashrec.model_store import ModelStore

from tests.service.redis_server import redis_url


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(interactions, store) with one LightGCN version trained on generated data."""
    data = generate_interactions(n_users=400, n_items=600, n_communities=8, mean_items_per_user=20, seed=11)
    store = ModelStore(tmp_path_factory.mktemp("trained") / "store")
    cfg = IndexConfig(
        encoder=EncoderConfig(name="lightgcn", dim=32, epochs=8, batch_size=1024, lr=0.01),
        quantizer=QuantizerConfig(bits=128),
        progress=False,
    )
    build_index(data, store, cfg)
    return data, store


@pytest.fixture(scope="session")
def redis_cache_url():
    try:
        with redis_url() as url:
            yield url
    except LookupError as err:
        pytest.skip(str(err))


@pytest.fixture(params=["memory", "redis"])
def cache_settings(request) -> dict[str, object]:
    """Settings overrides for each cache backend; the same tests run against both."""
    if request.param == "memory":
        return {"redis_url": None}
    return {"redis_url": request.getfixturevalue("redis_cache_url")}
