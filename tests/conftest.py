"""Shared fixtures: small planted models built without training, and stores holding them."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import scipy.sparse as sp
from hashrec.indexer.pipeline import serving_arrays
from hashrec.indexer.quantizers import SignQuantizer
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel, build_binary_index
from hashrec.retrieval.schema import ITEM_INDEX_FILE


def planted_arrays(
    n_users: int = 300, n_items: int = 500, dim: int = 16, bits: int = 64, seed: int = 0
) -> dict[str, np.ndarray]:
    """Recommender arrays from clustered random embeddings with a few seen items per user."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((8, dim))
    users = centers[rng.integers(0, 8, n_users)] + 0.5 * rng.standard_normal((n_users, dim))
    items = centers[rng.integers(0, 8, n_items)] + 0.5 * rng.standard_normal((n_items, dim))
    items *= rng.uniform(0.8, 1.2, (n_items, 1))
    seen_rows = np.repeat(np.arange(n_users), 5)
    seen_cols = rng.integers(0, n_items, n_users * 5)
    train = sp.csr_matrix(
        (np.ones(len(seen_rows), np.float32), (seen_rows, seen_cols)), shape=(n_users, n_items)
    )
    train.sum_duplicates()
    quantizer = SignQuantizer(bits=bits, transform="mips", seed=seed)
    return serving_arrays(train, users.astype(np.float32), items.astype(np.float32), quantizer)


def publish_arrays(store: ModelStore, arrays: dict[str, np.ndarray], **manifest: object) -> str:
    """Publish recommender arrays with their faiss index, as the indexer does."""
    index = build_binary_index(arrays["item_codes"])
    blob = faiss.serialize_index_binary(index).tobytes()
    bits = arrays["item_codes"].shape[1] * 8
    return store.publish(arrays, {ITEM_INDEX_FILE: blob}, bits=bits, **manifest)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def restore_logging():  # type: ignore[no-untyped-def]
    """In-process CLI runs (``hashrec serve`` with uvicorn mocked) install the service's JSON
    handler on the root logger; each test leaves logging as it found it."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return planted_arrays()


@pytest.fixture
def model(arrays: dict[str, np.ndarray]) -> ServingModel:
    return ServingModel.from_arrays("test", arrays)


@pytest.fixture
def store(tmp_path, arrays) -> ModelStore:  # type: ignore[no-untyped-def]
    model_store = ModelStore(tmp_path / "store")
    publish_arrays(model_store, arrays, dataset={"source": "planted"})
    return model_store
