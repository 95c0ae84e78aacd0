"""HTTP contract of the service, against a published planted model."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import two_stage_searcher
from hashrec.service.app import create_app
from hashrec.service.settings import Settings


@pytest.fixture
def client(store):
    with TestClient(create_app(Settings(store=store.root))) as test_client:
        yield test_client


def test_health_and_ready(client, store):
    assert client.get("/healthz").json() == {"status": "ok", "model_version": None, "reason": None}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == store.current()


def test_recommend_answers_from_the_searcher(client, store):
    response = client.post("/v1/recommend", json={"user_id": "u7", "k": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == "u7" and body["model_version"] == store.current()
    model = ServingModel.from_artifact(store.open())
    expected = two_stage_searcher(model).search_users(np.array([7]), 5)
    assert [item["item_id"] for item in body["items"]] == model.item_labels(expected.items[0])
    assert np.allclose([item["score"] for item in body["items"]], expected.scores[0], rtol=1e-5)
    seen = set(model.item_labels(model.seen(7)))
    assert not seen & {item["item_id"] for item in body["items"]}


def test_second_identical_request_is_cached(client):
    first = client.post("/v1/recommend", json={"user_id": "u3"}).json()
    second = client.post("/v1/recommend", json={"user_id": "u3"}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["items"] == second["items"] and len(first["items"]) == 20


def test_unknown_user_in_strict_mode_is_404_naming_it(client):
    response = client.post("/v1/recommend", json={"user_id": "nobody", "strict": True})
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": "u1", "k": 0}, "k"),
        ({"user_id": "u1", "k": 1001}, "k"),
        ({"user_id": "u1", "k": "many"}, "k"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 5}, "user_id"),
        ({"user_id": "u1", "extra": 1}, "extra"),
    ],
)
def test_bad_requests_are_422_naming_the_field(client, body, field):
    response = client.post("/v1/recommend", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"].startswith(field) or f"{field}:" in payload["detail"]
    assert any(error["field"] == field for error in payload["errors"])


def test_malformed_json_is_422(client):
    response = client.post(
        "/v1/recommend", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"", {"content-type": "application/json"}),
        (b'{"user_id": "u1"}', {"content-type": "text/plain"}),
        (b'{"user_id": "u1"}', {}),
    ],
)
@pytest.mark.parametrize("path", ["/v1/recommend", "/v1/recommend/batch", "/v1/similar-items"])
def test_missing_or_non_json_body_is_422_naming_body(client, path, content, headers):
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


def test_json_content_type_with_parameters_is_accepted(client):
    headers = {"content-type": "application/json; charset=utf-8"}
    response = client.post("/v1/recommend", content=b'{"user_id": "u3", "k": 2}', headers=headers)
    assert response.status_code == 200 and len(response.json()["items"]) == 2


def test_query_route_bodies_are_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, model in [("/v1/recommend", "RecommendRequest"), ("/v1/recommend/batch", "BatchRequest")]:
        body = paths[path]["post"]["requestBody"]
        assert body["required"] and body["content"]["application/json"]["schema"]["title"] == model


def test_empty_store_is_alive_but_not_ready(tmp_path):
    app = create_app(Settings(store=tmp_path / "empty"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "no current version" in ready.json()["reason"]
        response = client.post("/v1/recommend", json={"user_id": "u1"})
        assert response.status_code == 503 and "no model loaded" in response.json()["detail"]


def test_damaged_current_version_is_not_served(tmp_path, arrays):
    from tests.conftest import publish_arrays

    store = ModelStore(tmp_path / "store")
    version = publish_arrays(store, arrays)
    target = store.versions_dir / version / "item_codes.npy"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with TestClient(create_app(Settings(store=store.root))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "item_codes.npy" in ready.json()["reason"]


def test_cache_disabled_never_reports_cached(store):
    with TestClient(create_app(Settings(store=store.root, cache_enabled=False))) as client:
        for _ in range(2):
            assert client.post("/v1/recommend", json={"user_id": "u1"}).json()["cached"] is False


def test_oversized_body_is_413(store):
    with TestClient(create_app(Settings(store=store.root, max_body_bytes=2048))) as client:
        body = {"user_id": "u1", "exclude_items": ["x" * 200] * 20}
        response = client.post("/v1/recommend", json=body)
        assert response.status_code == 413 and response.json()["detail"].startswith("body")

        def chunks():
            yield b'{"user_id": "u1", "exclude_items": ['
            for _ in range(50):
                yield b'"' + b"y" * 100 + b'",'
            yield b'"z"]}'

        streamed = client.post(
            "/v1/recommend", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413


def test_small_streamed_body_is_replayed_to_the_app(client):
    def chunks():
        yield b'{"user_id": '
        yield b'"u2", "k": 4}'

    response = client.post("/v1/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 200 and len(response.json()["items"]) == 4


def test_cors_is_off_unless_configured(store):
    headers = {"origin": "https://shop.example", "access-control-request-method": "POST"}
    with TestClient(create_app(Settings(store=store.root))) as client:
        assert "access-control-allow-origin" not in client.options("/v1/recommend", headers=headers).headers
    allowed = Settings(store=store.root, cors_origins=["https://shop.example"])
    with TestClient(create_app(allowed)) as client:
        response = client.options("/v1/recommend", headers=headers)
        assert response.headers["access-control-allow-origin"] == "https://shop.example"


@pytest.mark.parametrize("version", ["../../etc/passwd", "/etc", "..", "a/../../b"])
def test_admin_reload_cannot_escape_the_store(store, version):
    with TestClient(create_app(Settings(store=store.root, admin_token="t"))) as client:
        response = client.post(
            "/admin/reload", json={"version": version}, headers={"authorization": "Bearer t"}
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "version"
        assert "invalid version or alias name" in response.json()["detail"]
        assert client.get("/readyz").json()["model_version"] == store.current()


def test_admin_reload_checks_the_token_before_reading_the_body(store):
    with TestClient(create_app(Settings(store=store.root, admin_token="t"))) as client:
        for body in ("{bad", "[" * 5000):
            response = client.post(
                "/admin/reload", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 401, response.text
        with_token = {"authorization": "Bearer t", "content-type": "application/json"}
        response = client.post("/admin/reload", content="{bad", headers=with_token)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body"
        assert client.post("/admin/reload", headers={"authorization": "Bearer t"}).status_code == 200


def test_admin_reload_of_a_missing_version_is_a_404_naming_it(store):
    with TestClient(create_app(Settings(store=store.root, admin_token="t"))) as client:
        response = client.post(
            "/admin/reload",
            json={"version": "v99999999-000000-000000"},
            headers={"authorization": "Bearer t"},
        )
        assert response.status_code == 404
        assert response.json()["detail"] == "version: 'v99999999-000000-000000' is not in the store"
        assert str(store.root) not in response.text


@pytest.mark.parametrize("wanted", [False, True])
def test_fastapi_opentelemetry_follows_the_setting(store, monkeypatch, wanted):
    """Off by default, so FastAPI skips its per-request provider check; HASHREC_OPENTELEMETRY
    turns it back on. (FastAPI exposes the choice only through its constructor, so the test reads
    the config it kept, ``_telemetry``.)"""
    if wanted:
        monkeypatch.setenv("HASHREC_OPENTELEMETRY", "true")
    app = create_app(Settings(store=store.root))
    assert [app._telemetry[signal] for signal in ("tracing", "metrics", "logs")] == [wanted] * 3
    with TestClient(app) as client:
        assert client.post("/v1/recommend", json={"user_id": "u0", "k": 3}).status_code == 200


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("query", [{"user_id": "ghost"}, {"history": ["no-such-item"]}])
def test_strict_is_a_404_even_after_a_non_strict_answer_was_cached(store, direct, query):
    with TestClient(create_app(Settings(store=store.root, direct_routes=direct))) as client:
        loose = client.post("/v1/recommend", json={**query, "k": 4})
        assert loose.status_code == 200 and loose.json()["fallback"] is True
        strict = client.post("/v1/recommend", json={**query, "k": 4, "strict": True})
        assert strict.status_code == 404, strict.text


def test_a_client_gone_before_its_body_arrived_is_a_400_not_a_500(store):
    import anyio

    app = create_app(Settings(store=store.root))
    sent: list[dict] = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/recommend",
        "raw_path": b"/v1/recommend",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"t"), (b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def run():
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    anyio.run(run)
    assert sent[0]["status"] == 400


@pytest.mark.parametrize(
    ("given", "echoed"),
    [("abc-123", "abc-123"), ("h\u00e9llo\U0001f600", None), ("a" * 100, "a" * 64), (" ", None)],
)
def test_request_ids_are_echoed_when_printable_ascii_else_replaced(client, given, echoed):
    response = client.get("/healthz", headers={"x-request-id": given.encode()})  # UTF-8 on the wire
    returned = response.headers["x-request-id"]
    if echoed is None:
        assert len(returned) == 32 and all(c in "0123456789abcdef" for c in returned)
    else:
        assert returned == echoed


def test_a_trailing_slash_is_a_json_404_not_a_redirect(client):
    response = client.post("/v1/recommend/", json={"user_id": "u1"}, follow_redirects=False)
    assert response.status_code == 404 and response.json()["detail"] == "Not Found"


def test_head_answers_where_get_does(client):
    for path in ("/healthz", "/readyz", "/v1/model", "/metrics"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b"", path


def test_an_omitted_k_follows_a_lower_max_k_and_an_explicit_one_is_checked(store):
    with TestClient(create_app(Settings(store=store.root, max_k=10))) as client:
        response = client.post("/v1/recommend", json={"user_id": "u1"})
        assert response.status_code == 200 and len(response.json()["items"]) == 10
        assert client.post("/v1/recommend/batch", json={"user_ids": ["u1"]}).status_code == 200
        response = client.post("/v1/recommend", json={"user_id": "u1", "k": 11})
        assert response.status_code == 422 and response.json()["detail"] == "k: must be at most 10"


def test_a_422_lists_at_most_twenty_errors(client):
    response = client.post("/v1/recommend", json={"user_id": "u1", "exclude_items": [1] * 500})
    body = response.json()
    assert response.status_code == 422 and len(body["errors"]) == 20
    assert body["detail"].endswith("; and 480 more errors") and len(response.content) < 5000


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_admin_token_scheme_is_case_insensitive(store, scheme):
    with TestClient(create_app(Settings(store=store.root, admin_token="t"))) as client:
        assert client.post("/admin/reload", headers={"authorization": f"{scheme} t"}).status_code == 200
        assert client.post("/admin/reload", headers={"authorization": f"{scheme} x"}).status_code == 403
        assert client.post("/admin/reload", headers={"authorization": scheme}).status_code == 401
