"""The per-request metrics' tally (service.metrics.Tally) exposes what prometheus-client's own
calls expose, once flushed; the scrape flushes it."""

from __future__ import annotations

import numpy as np
from hashrec.service.metrics import Tally
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    counter = Counter("t_requests_total", "requests", ["route"], registry=registry)
    histogram = Histogram("t_seconds", "latency", ["route"], buckets=(0.001, 0.01, 0.1), registry=registry)
    return counter, histogram


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_a_flushed_tally_exposes_what_direct_calls_expose() -> None:
    direct, tallied = CollectorRegistry(), CollectorRegistry()
    (c1, h1), (c2, h2) = _metrics(direct), _metrics(tallied)
    tally = Tally()
    rng = np.random.default_rng(0)
    # edges included: a value equal to a bound falls in that bound's bucket, as observe() puts it
    values = [*rng.exponential(0.01, 500).tolist(), 0.001, 0.01, 0.1, 0.0, 5.0]
    for n, value in enumerate(values):
        route = ("a", "b")[n % 2]
        c1.labels(route=route).inc()
        h1.labels(route=route).observe(value)
        tally.inc(c2.labels(route=route))
        tally.observe(h2.labels(route=route), value)
    assert _exposition(direct) != _exposition(tallied)  # nothing is exposed before the flush
    tally.flush()
    assert _exposition(direct) == _exposition(tallied)
    tally.flush()  # a second flush adds nothing
    assert _exposition(direct) == _exposition(tallied)


def test_the_scrape_shows_a_request_at_once(trained) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from hashrec.service.app import create_app
    from hashrec.service.settings import Settings

    with TestClient(create_app(Settings(store=trained[1].root, poll_interval_s=0))) as client:
        _count_a_request(client)


def _count_a_request(client) -> None:  # type: ignore[no-untyped-def]
    def served() -> float:
        rows = client.get("/metrics").text.splitlines()
        prefix = 'hashrec_requests_total{method="GET",route="/healthz",status="200"}'
        line = next((r for r in rows if r.startswith(prefix)), "x 0")
        return float(line.rsplit(" ", 1)[1])

    before = served()
    client.get("/healthz")
    assert served() == before + 1
