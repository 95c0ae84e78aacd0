"""What an unauthenticated client can learn: no filesystem paths, bucket names or library versions,
no documentation UI from a CDN unless asked, and the admin routes out of the public schema."""

from __future__ import annotations

from fastapi.testclient import TestClient
from hashrec.model_store import ModelStore
from hashrec.service.app import create_app
from hashrec.service.settings import Settings

from tests.conftest import planted_arrays, publish_arrays


def test_the_model_route_shows_no_paths_or_library_versions(tmp_path):
    store = ModelStore(tmp_path / "secret-place" / "store")
    data_path = str(tmp_path / "secret-place" / "train.csv")
    publish_arrays(
        store,
        planted_arrays(),
        dataset={"source": data_path, "options": {"path": data_path}, "users": 300},
        config={"encoder": "mf", "encoder_config": {"history": [{"epoch": 1}] * 1000}},
        libraries={"numpy": "2.0"},
    )
    with TestClient(create_app(Settings(store=store.root, poll_interval_s=0))) as client:
        response = client.get("/v1/model")
    text = response.text
    assert response.status_code == 200 and "secret-place" not in text and str(tmp_path) not in text
    manifest = response.json()["manifest"]
    assert "libraries" not in manifest and "encoder_config" not in manifest["config"]
    assert manifest["config"]["encoder"] == "mf" and manifest["dataset"]["users"] == 300


def test_not_ready_reasons_do_not_name_the_store_location(tmp_path):
    where = tmp_path / "secret-place" / "empty-store"
    with TestClient(create_app(Settings(store=where, poll_interval_s=0))) as client:
        for path in ("/readyz", "/v1/model"):
            response = client.get(path)
            assert response.status_code == 503 and "secret-place" not in response.text, response.text
            assert "the store" in response.text


def test_docs_ui_is_off_by_default_and_admin_is_documented_only_where_enabled(tmp_path):
    with TestClient(create_app(Settings(store=tmp_path / "s", poll_interval_s=0))) as client:
        assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert "/v1/recommend" in paths and not any(p.startswith("/admin") for p in paths)
    with TestClient(create_app(Settings(store=tmp_path / "s", poll_interval_s=0, admin_token="t"))) as client:
        assert "/admin/reload" in client.get("/openapi.json").json()["paths"]
    with TestClient(create_app(Settings(store=tmp_path / "s", poll_interval_s=0, docs="ui"))) as client:
        assert client.get("/docs").status_code == 200
    with TestClient(create_app(Settings(store=tmp_path / "s", poll_interval_s=0, docs="off"))) as client:
        assert client.get("/openapi.json").status_code == 404
