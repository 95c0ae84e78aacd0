"""Prometheus metrics; multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set (several workers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from bisect import bisect_left
from typing import Any

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


class Tally:
    """Counts of the per-request metrics, held in this process until ``flush`` adds them to their
    prometheus children (the scrape flushes first; ``flush_every`` flushes the rest each second).

    A request's counter increment and two histogram observations cost about 8 us through
    prometheus-client (a lock and a check per call, mmapped values with several workers), more than
    a cached answer's own work (benchmarks/serving.md); here they are a dict update each, and a
    flush makes one call per child and bucket. The exposition is the same, at most a second late.
    """

    def __init__(self) -> None:
        self._counts: dict[Any, int] = {}
        self._observed: dict[Any, tuple[list[int], list[float]]] = {}

    def inc(self, child: Any) -> None:
        """One increment of a counter child."""
        self._counts[child] = self._counts.get(child, 0) + 1

    def observe(self, child: Any, value: float) -> None:
        """One observation of a histogram child (the bucket ``Histogram.observe`` would count)."""
        entry = self._observed.get(child)
        if entry is None:
            entry = self._observed[child] = ([0] * len(child._upper_bounds), [0.0])
        entry[0][bisect_left(child._upper_bounds, value)] += 1
        entry[1][0] += value

    def flush(self) -> None:
        """Add what was counted since the last flush to the prometheus children."""
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, {}
        for child, n in counts.items():
            child.inc(n)
        for child, (buckets, total) in observed.items():
            child._sum.inc(total[0])
            for bucket, n in zip(child._buckets, buckets, strict=True):
                if n:
                    bucket.inc(n)

    async def flush_every(self, seconds: float) -> None:
        """Flush every ``seconds`` until cancelled (then once more)."""
        try:
            while True:
                await asyncio.sleep(seconds)
                self.flush()
        finally:
            self.flush()


#: the per-request metrics' tally of this process
TALLY = Tally()


def render() -> tuple[bytes, str]:
    """The exposition text; aggregates every worker in multiprocess mode."""
    TALLY.flush()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
