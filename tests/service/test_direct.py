"""POST /v1/recommend answered directly (service.direct) equals the answer routed through FastAPI."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hashrec.service.app import create_app
from hashrec.service.settings import Settings


@pytest.fixture(scope="module")
def clients(trained):
    """(direct, routed) clients on one store, caching off so every answer is computed."""
    _, store = trained
    common = {"store": store.root, "poll_interval_s": 0, "cache_enabled": False, "max_body_bytes": 4096}
    direct = create_app(Settings(**common, direct_routes=True, cors_origins=["http://example.org"]))
    routed = create_app(Settings(**common, direct_routes=False, cors_origins=["http://example.org"]))
    with TestClient(direct) as a, TestClient(routed) as b:
        yield a, b


def requests(user: str, item: str) -> list[dict]:
    """Valid, fallback and every kind of bad request."""
    headers = {"content-type": "application/json", "origin": "http://example.org"}
    bodies = [
        {"user_id": user, "k": 5},
        {"user_id": user, "k": 3, "exclude_seen": False, "candidates": 50, "exclude_items": [item]},
        {"history": [item], "k": 4},
        {"user_id": "nobody", "k": 2},
        {"user_id": "nobody", "strict": True},
        {"history": ["no-such-item"], "strict": True},
        {"user_id": user, "k": 0},
        {"user_id": user, "k": 100000},
        {"user_id": user, "candidates": 10**6},
        {"user_id": user, "k": "many"},
        {"user_id": user, "surprise": 1},
    ]
    cases = [{"json": body, "headers": headers} for body in bodies]
    cases += [
        {"content": b"{not json", "headers": headers},
        {"content": b"", "headers": headers},
        {"content": b'{"user_id": "u"}', "headers": {"content-type": "text/plain"}},
        {"content": b"[" * 5000, "headers": headers},  # over max_body_bytes: 413
    ]
    return cases


def test_direct_answers_equal_routed_answers(clients, trained):
    data, _ = trained
    direct, routed = clients
    for case in requests(str(data.user_ids[3]), str(data.item_ids[7])):
        a = direct.post("/v1/recommend", **case)
        b = routed.post("/v1/recommend", **case)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), case
        for header in ("content-type", "access-control-allow-origin"):
            assert a.headers.get(header) == b.headers.get(header), (header, case)
        assert len(a.headers["x-request-id"]) == len(b.headers["x-request-id"]) == 32


def test_other_methods_and_paths_fall_through_to_fastapi(clients):
    direct, routed = clients
    for method, path in (("GET", "/v1/recommend"), ("POST", "/v1/recommend/"), ("GET", "/healthz")):
        a, b = direct.request(method, path), routed.request(method, path)
        assert a.status_code == b.status_code, (method, path)
    assert direct.get("/v1/recommend").status_code == 405


def test_the_route_stays_in_the_openapi_document(clients):
    direct, routed = clients
    assert direct.get("/openapi.json").json() == routed.get("/openapi.json").json()


def test_direct_requests_are_counted_in_the_metrics(clients, trained):
    data, _ = trained
    direct, _ = clients

    def served() -> float:
        text = direct.get("/metrics").text
        line = next(
            (
                row
                for row in text.splitlines()
                if row.startswith("hashrec_requests_total{")
                and 'route="/v1/recommend"' in row
                and 'status="200"' in row
                and 'method="POST"' in row
            ),
            "x 0",
        )
        return float(line.rsplit(" ", 1)[1])

    before = served()
    direct.post("/v1/recommend", json={"user_id": str(data.user_ids[1]), "k": 2})
    assert served() == before + 1


@pytest.fixture(scope="module")
def caching_clients(trained):
    """(direct, routed) clients with the in-process cache on."""
    _, store = trained
    common = {"store": store.root, "poll_interval_s": 0, "cache_enabled": True, "max_k": 50}
    direct = create_app(Settings(**common, direct_routes=True))
    routed = create_app(Settings(**common, direct_routes=False))
    with TestClient(direct) as a, TestClient(routed) as b:
        yield a, b


def cache_hits(client: TestClient) -> float:
    rows = client.get("/metrics").text.splitlines()
    line = next((r for r in rows if r.startswith('hashrec_cache_total{result="hit"}')), "x 0")
    return float(line.rsplit(" ", 1)[1])


def test_cached_answers_equal_routed_hits_and_count_as_hits(caching_clients, trained):
    data, _ = trained
    direct, routed = caching_clients
    headers = {"content-type": "application/json"}
    bodies = [
        b'{"user_id": "%s", "k": 7}' % str(data.user_ids[5]).encode(),
        b'{"user_id": "%s"}' % str(data.user_ids[6]).encode(),  # k absent: the default 20
        b'{"k": 3, "user_id": "nobody"}',  # the popular items, cached as the fallback
        b'{"user_id": "%s", "k": 7.0}' % str(data.user_ids[5]).encode(),  # a float k: the route's
        b'{"user_id": "%s", "k": 51}' % str(data.user_ids[5]).encode(),  # over max_k: 422
        b'{"user_id": "%s", "strict": false}' % str(data.user_ids[5]).encode(),
        b'{"user_id": ""}',
        b'["not", "an", "object"]',
    ]
    for body in bodies:
        first = direct.post("/v1/recommend", content=body, headers=headers)
        before = cache_hits(direct)  # one registry for both apps: read around the direct hit alone
        a = direct.post("/v1/recommend", content=body, headers=headers)
        hits = cache_hits(direct)
        routed.post("/v1/recommend", content=body, headers=headers)
        b = routed.post("/v1/recommend", content=body, headers=headers)
        assert (a.status_code, a.json()) == (b.status_code, b.json()), body
        assert a.headers["content-type"] == b.headers["content-type"], body
        assert len(a.headers["x-request-id"]) == 32
        if a.status_code == 200:
            assert a.json()["cached"] is True, body  # (7.0 has 7's key: already cached before it)
            assert first.json()["cached"] is (b"7.0" in body), body
            assert hits == before + 1, body


def test_cached_answer_takes_only_plain_held_requests(caching_clients, trained):
    from hashrec.service.routes.recommend import cached_answer

    data, _ = trained
    direct, _ = caching_clients
    state = direct.app.state.service
    user = str(data.user_ids[9])
    plain = b'{"user_id": "%s", "k": 4}' % user.encode()
    assert cached_answer(state, plain) is None  # not cached yet
    routed = direct.post("/v1/recommend", content=plain, headers={"content-type": "application/json"})
    answered = cached_answer(state, plain)
    assert answered is not None
    assert orjson_loads(answered) == {**routed.json(), "cached": True}
    for other in (
        b'{"user_id": "%s", "k": 4, "exclude_seen": true}' % user.encode(),
        b'{"user_id": "%s", "k": true}' % user.encode(),
        b'{"user_id": "%s", "k": 5}' % user.encode(),
        b'{"user_id": "%s", "k": 4' % user.encode(),
    ):
        assert cached_answer(state, other) is None, other


def orjson_loads(raw: bytes) -> object:
    import orjson

    return orjson.loads(raw)
