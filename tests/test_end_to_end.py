"""Generated data -> index -> publish -> `hashrec serve` on a free port -> recommend over HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.pipeline import build_index
from hashrec.model_store import ModelStore

from tests.support import start_serve

RECALL_FLOOR = 0.85  # served top-20 vs exact float top-20, 128-bit codes, C = 200


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = generate_interactions(n_users=500, n_items=800, n_communities=8, mean_items_per_user=20, seed=5)
    store = ModelStore(root / "store")
    cfg = IndexConfig(
        encoder=EncoderConfig(name="lightgcn", dim=32, epochs=8, batch_size=1024, lr=0.01),
        quantizer=QuantizerConfig(bits=128),
        progress=False,
    )
    result = build_index(data, store, cfg)
    process, base = start_serve(store.root, {"HASHREC_CACHE_ENABLED": "true"})
    try:
        yield base, store, data, result
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_recommendations_exclude_seen_and_match_exact_top_k(served):
    base, store, data, result = served
    artifact = store.open()
    users = artifact.array("user_embeddings")
    items = artifact.array("item_embeddings")
    item_ids = artifact.array("item_ids")
    overlaps = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for row in range(0, data.n_users, 5):
            user_id = str(data.user_ids[row])
            response = client.post("/v1/recommend", json={"user_id": user_id, "k": 20})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == result["version"]
            got = [item["item_id"] for item in body["items"]]
            seen = set(data.item_ids[data.train[row].indices].tolist())
            assert len(got) == 20 and not seen & set(got)
            scores = users[row] @ items.T
            scores[data.train[row].indices] = -np.inf
            exact = {i.decode() for i in item_ids[np.argsort(-scores)[:20]].tolist()}
            overlaps.append(len(exact & set(got)) / 20)
    assert np.mean(overlaps) >= RECALL_FLOOR


def test_served_quality_beats_popularity(served):
    """The served ranking learned something: clearly above recommending the most popular items."""
    _, _, data, result = served
    popularity = np.asarray(data.train.sum(axis=0)).ravel().astype(float)
    recalls = []
    for row in np.flatnonzero(np.diff(data.test.indptr) > 0):
        scores = popularity.copy()
        scores[data.train[row].indices] = -np.inf
        top = set(np.argsort(-scores, kind="stable")[:20].tolist())
        truth = set(data.test[row].indices.tolist())
        recalls.append(len(top & truth) / len(truth))
    assert result["metrics"]["served"]["recall@20"] > 1.2 * float(np.mean(recalls))


def test_unknown_user_over_http(served):
    base, *_ = served
    fallback = httpx.post(f"{base}/v1/recommend", json={"user_id": "ghost", "k": 3}).json()
    assert fallback["fallback"] is True and len(fallback["items"]) == 3
    response = httpx.post(f"{base}/v1/recommend", json={"user_id": "ghost", "strict": True})
    assert response.status_code == 404 and "ghost" in response.json()["detail"]


def test_two_workers_serve_and_aggregate_metrics(served, tmp_path):
    _, store, data, _ = served
    process, base = start_serve(store.root, {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}, workers=2)
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for row in range(40):
                response = client.post("/v1/recommend", json={"user_id": str(data.user_ids[row])})
                assert response.status_code == 200
            text = client.get("/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith('hashrec_requests_total{method="POST",route="/v1/recommend",status="200"}')
        )
        assert float(line.split()[-1]) == 40.0  # summed over both workers
    finally:
        process.terminate()
        process.wait(timeout=30)
