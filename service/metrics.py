"""Prometheus metrics; multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set (several workers)."""

from __future__ import annotations

import contextlib
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25)

REQUESTS = Counter("hashrec_requests_total", "HTTP requests.", ["route", "method", "status"])
LATENCY = Histogram(
    "hashrec_request_seconds", "HTTP request latency.", ["route", "method"], buckets=_LATENCY_BUCKETS
)
STAGE = Histogram("hashrec_stage_seconds", "Time per serving stage.", ["stage"], buckets=_STAGE_BUCKETS)
CACHE = Counter("hashrec_cache_total", "Answer cache lookups.", ["result"])
CACHE_ERRORS = Counter("hashrec_cache_errors_total", "Cache backend errors (answered uncached).")
# Children bound once: ``labels()`` costs a lock and a dict lookup on every request otherwise.
CACHE_HIT, CACHE_MISS = CACHE.labels(result="hit"), CACHE.labels(result="miss")
STAGE_CACHE_GET, STAGE_SEARCH = STAGE.labels(stage="cache_get"), STAGE.labels(stage="search_rerank")
RELOADS = Counter("hashrec_model_reloads_total", "Model loads by result.", ["result"])
MODEL = Gauge(
    "hashrec_model_info", "The loaded model version (value 1).", ["version"], multiprocess_mode="liveall"
)


def set_model_version(version: str, previous: str | None) -> None:
    """Expose the serving version as an info-style gauge."""
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            MODEL.remove(previous)
    MODEL.labels(version=version).set(1)


def render() -> tuple[bytes, str]:
    """The exposition text; aggregates every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
