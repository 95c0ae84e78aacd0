"""The full service API against a trained model, with the in-process cache and with real Redis."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hashrec.service.app import create_app
from hashrec.service.settings import Settings


@pytest.fixture
def client(trained, cache_settings):
    _, store = trained
    settings = Settings(store=store.root, admin_token="s3cret", poll_interval_s=0, **cache_settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def recommend(client, **body):
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def ids(answer):
    return [item["item_id"] for item in answer["items"]]


class TestCaching:
    def test_repeat_is_cached_and_identical(self, client, trained):
        data, _ = trained
        user = str(data.user_ids[1])
        first, second = recommend(client, user_id=user, k=7), recommend(client, user_id=user, k=7)
        assert (first["cached"], second["cached"]) == (False, True)
        assert first["items"] == second["items"]

    def test_other_parameters_are_other_keys(self, client, trained):
        data, _ = trained
        user = str(data.user_ids[2])
        recommend(client, user_id=user, k=5)
        assert recommend(client, user_id=user, k=6)["cached"] is False
        assert recommend(client, user_id=user, k=5, exclude_seen=False)["cached"] is False
        assert recommend(client, user_id=user, k=5, exclude_items=["i000"])["cached"] is False


class TestRecommend:
    def test_unknown_user_gets_popular_items_as_fallback(self, client, trained):
        data, _ = trained
        answer = recommend(client, user_id="visitor-1", k=5)
        popularity = np.asarray(data.train.sum(axis=0)).ravel()
        expected = data.item_ids[np.argsort(-popularity, kind="stable")[:5]].tolist()
        assert answer["fallback"] is True and ids(answer) == expected

    def test_strict_unknown_user_is_404(self, client):
        response = client.post("/v1/recommend", json={"user_id": "visitor-2", "strict": True})
        assert response.status_code == 404 and "visitor-2" in response.json()["detail"]

    def test_exclude_items_and_exclude_seen(self, client, trained):
        data, _ = trained
        user = str(data.user_ids[3])
        top = ids(recommend(client, user_id=user, k=5))
        again = ids(recommend(client, user_id=user, k=5, exclude_items=top[:2]))
        assert not set(top[:2]) & set(again) and again[:3] == top[2:5]
        seen = set(data.item_ids[data.train[3].indices].tolist())
        with_seen = ids(recommend(client, user_id=user, k=50, exclude_seen=False))
        assert seen & set(with_seen)

    def test_history_of_a_known_user_agrees_with_their_answer(self, client, trained):
        data, _ = trained
        overlaps = []
        for row in range(0, data.n_users, 8):
            history = data.item_ids[data.train[row].indices].tolist()
            stored = ids(recommend(client, user_id=str(data.user_ids[row]), k=20))
            visitor = recommend(client, history=history, k=20)
            assert visitor["fallback"] is False and visitor["user_id"] is None
            assert not set(history) & set(ids(visitor))
            overlaps.append(len(set(stored) & set(ids(visitor))) / 20)
        assert np.mean(overlaps) >= 0.6

    def test_candidate_override_is_bounded(self, client, trained):
        data, _ = trained
        user = str(data.user_ids[0])
        assert len(recommend(client, user_id=user, k=10, candidates=10)["items"]) == 10
        response = client.post("/v1/recommend", json={"user_id": user, "candidates": 10**6})
        assert response.status_code == 422 and response.json()["detail"].startswith("candidates")

    def test_neither_user_nor_history_gets_popular_items(self, client):
        answer = recommend(client, k=3)
        assert answer["fallback"] is True and len(answer["items"]) == 3
        assert client.post("/v1/recommend", json={"strict": True}).status_code == 404


class TestBatchAndSimilar:
    def test_batch_equals_single_requests(self, client, trained):
        data, _ = trained
        users = [str(u) for u in data.user_ids[:12]] + ["ghost"]
        response = client.post("/v1/recommend/batch", json={"user_ids": users, "k": 8})
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["user_id"] for r in results] == users
        for result in results[:-1]:
            single = recommend(client, user_id=result["user_id"], k=8)
            assert ids(result) == ids(single) and result["fallback"] is False
        assert results[-1]["fallback"] is True

    def test_batch_too_large_is_413(self, client):
        response = client.post("/v1/recommend/batch", json={"user_ids": [f"u{i}" for i in range(300)]})
        assert response.status_code == 413 and "user_ids" in response.json()["detail"]

    def test_similar_items(self, client, trained):
        data, _ = trained
        item = str(data.item_ids[5])
        response = client.post("/v1/similar-items", json={"item_id": item, "k": 10})
        assert response.status_code == 200
        body = response.json()
        scores = [entry["score"] for entry in body["items"]]
        assert len(scores) == 10 and item not in ids(body)
        assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)

    def test_similar_unknown_item_is_404(self, client):
        response = client.post("/v1/similar-items", json={"item_id": "nothing"})
        assert response.status_code == 404 and "nothing" in response.json()["detail"]


class TestOperations:
    def test_model_route(self, client, trained):
        data, store = trained
        body = client.get("/v1/model").json()
        assert body["model_version"] == store.current()
        assert (body["users"], body["items"], body["bits"]) == (data.n_users, data.n_items, 128)
        assert "files" not in body["manifest"] and body["manifest"]["config"]["encoder"] == "lightgcn"

    def test_metrics_route(self, client, trained):
        data, _ = trained
        recommend(client, user_id=str(data.user_ids[0]))
        text = client.get("/metrics").text
        assert 'hashrec_requests_total{method="POST",route="/v1/recommend",status="200"}' in text
        assert "hashrec_stage_seconds_bucket" in text and "hashrec_cache_total" in text
        assert "hashrec_model_info" in text

    def test_request_id_is_echoed_or_made(self, client):
        assert client.get("/healthz", headers={"x-request-id": "abc"}).headers["x-request-id"] == "abc"
        assert len(client.get("/healthz").headers["x-request-id"]) == 32

    @pytest.mark.parametrize(
        ("headers", "status"),
        [({}, 401), ({"authorization": "Bearer wrong"}, 403), ({"authorization": "Basic s3cret"}, 401)],
    )
    def test_admin_reload_needs_the_token(self, client, headers, status):
        assert client.post("/admin/reload", headers=headers).status_code == status

    def test_admin_reload_with_the_token(self, client, trained):
        _, store = trained
        response = client.post("/admin/reload", headers={"authorization": "Bearer s3cret"})
        assert response.status_code == 200 and response.json()["model_version"] == store.current()


def test_admin_routes_are_off_without_a_token(trained):
    _, store = trained
    with TestClient(create_app(Settings(store=store.root, poll_interval_s=0))) as client:
        response = client.post("/admin/reload", headers={"authorization": "Bearer anything"})
        assert response.status_code == 404 and "disabled" in response.json()["detail"]


def test_no_traceback_in_errors(client):
    response = client.post("/v1/recommend", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "Traceback" not in response.text


def test_the_scan_prefetch_is_set_from_the_environment(trained, monkeypatch):
    """HASHREC_SCAN_PREFETCH_BYTES reaches the model; answers do not depend on it; < 0 is refused."""
    _, store = trained
    answers = []
    for value in ("0", "4096"):
        monkeypatch.setenv("HASHREC_SCAN_PREFETCH_BYTES", value)
        settings = Settings(store=store.root, poll_interval_s=0, cache_enabled=False)
        with TestClient(create_app(settings)) as client:
            model = client.app.state.service.loaded.model  # type: ignore[attr-defined]
            assert model.scan_prefetch_bytes == int(value) and model.scan == "numba"
            users = model.user_index.labels(np.arange(5))
            answers.append([recommend(client, user_id=user, k=10)["items"] for user in users])
    assert answers[0] == answers[1]
    monkeypatch.setenv("HASHREC_SCAN_PREFETCH_BYTES", "-1")
    with pytest.raises(ValueError, match="scan_prefetch_bytes"):
        Settings(store=store.root)
