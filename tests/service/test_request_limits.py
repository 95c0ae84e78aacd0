"""Limits that keep one client from hurting the others (issue 24): a 500 closes its connection,
heavy batches have a budget and leave the event loop."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hashrec.model_store import ModelStore
from hashrec.retrieval.recommender import Recommender
from hashrec.service.app import create_app
from hashrec.service.settings import Settings

from tests.conftest import planted_arrays, publish_arrays


@pytest.fixture
def store(tmp_path):
    store = ModelStore(tmp_path / "store")
    publish_arrays(store, planted_arrays())
    return store


def test_an_unhandled_error_closes_the_connection(store, monkeypatch):
    """Without `Connection: close` the client's next request on that keep-alive connection
    met a connection uvicorn was dropping."""

    def broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    settings = Settings(store=store.root, poll_interval_s=0, cache_enabled=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        monkeypatch.setattr(Recommender, "for_user", broken)  # after the smoke test
        response = client.post("/v1/recommend", json={"user_id": "u1"})
    assert response.status_code == 500 and response.headers["connection"] == "close"
    assert response.json() == {"detail": "internal error; see the service log"}


def test_a_batch_over_the_result_budget_is_refused_naming_it(store):
    settings = Settings(store=store.root, poll_interval_s=0, max_batch_results=100)
    with TestClient(create_app(settings)) as client:
        ok = client.post("/v1/recommend/batch", json={"user_ids": ["u1", "u2"], "k": 50})
        assert ok.status_code == 200
        refused = client.post("/v1/recommend/batch", json={"user_ids": ["u1", "u2", "u3"], "k": 50})
    assert refused.status_code == 413
    assert refused.json()["detail"] == "user_ids: 3 users x k 50 = 150 results, over the 100 a batch may ask"
