"""Where a cached answer's time goes in-process: microseconds per request of the bare ASGI app
(``serving_http.bare_asgi``) and of a cache hit through the whole service app, then a cProfile of
the hits, heaviest functions first. No network, no load generator.

    python benchmarks/hit_profile.py --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

import asgi_overhead
import serving_http
from hashrec.service.app import create_app
from hashrec.service.settings import Settings


async def profile(requests: int, top: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hashrec-hit-") as tmp:
        root = Path(tmp) / "store"
        serving_http.synthetic_store(root, 2_000, 40_000)
        app = create_app(Settings(store=root, poll_interval_s=0, log_level="warning", cache_enabled=True))
        body = b'{"user_id": "u1", "k": 20}'
        async with app.router.lifespan_context(app):
            await asgi_overhead.call(app, "POST", "/v1/recommend", body)  # fills the cache
            for name, target, path in (
                ("bare", serving_http.bare_asgi(app), "/bare"),
                ("hit", app, "/v1/recommend"),
            ):
                us = await asgi_overhead.per_request_us(target, [("POST", path, body)] * requests, 5)
                print(f"{name}: {us:.2f} us a request")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                await asgi_overhead.call(app, "POST", "/v1/recommend", body)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(profile(args.requests, args.top))


if __name__ == "__main__":
    main()
