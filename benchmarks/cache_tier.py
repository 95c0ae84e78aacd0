"""Does the in-process tier in front of Redis pay? Cache-hit throughput with and without it.

Starts a private redis-server and `hashrec serve` (one worker) on 127.0.0.1 twice, once with
HASHREC_NEAR_CACHE_SIZE=0 (every hit goes to Redis) and once with the default tier, warms the
cache for a set of users, then drives the same hot-key load from an asyncio client for a fixed
time, alternating the two configurations over several rounds. Reports requests/s and
p50/p99 per configuration and their ratio.

    python benchmarks/cache_tier.py --out benchmarks/results/cache_tier
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import common
from hashrec.indexer.build import IndexConfig, build_index
from hashrec.indexer.data import generate_interactions
from hashrec.model_store import ModelStore

sys.path.insert(0, str(Path(__file__).parent))
from common import free_port, start_redis


def start(store: Path, redis_port: int, near: int) -> tuple[subprocess.Popen[bytes], str]:
    """One worker caching in Redis, with (near > 0) or without the in-process tier."""
    env = {
        "HASHREC_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "HASHREC_NEAR_CACHE_SIZE": str(near),
        "HASHREC_POLL_INTERVAL_S": "0",
    }
    return common.start_service(store, free_port(), env)


async def drive(base: str, users: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for user in users:  # warm: every later request is a cache hit
            await client.post("/v1/recommend", json={"user_id": user, "k": 20})

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post(
                    "/v1/recommend", json={"user_id": users[i % len(users)], "k": 20}
                )
                assert response.status_code == 200 and response.json()["cached"]
                latencies.append(time.perf_counter() - started)
                i += 7

        began = time.perf_counter()
        await asyncio.gather(*(worker(j) for j in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1e3 * latencies[len(latencies) // 2],
        "p99_ms": 1e3 * latencies[int(0.99 * len(latencies))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cache_tier"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="hashrec-tier-")
    data = generate_interactions(n_users=2000, n_items=3000, seed=4)
    store = ModelStore(Path(tmp) / "store")
    build_index(data, store, IndexConfig(encoder="mf", dim=32, epochs=2, bits=64, progress=False))
    users = [str(u) for u in data.user_ids[:200]]
    redis_port = free_port()
    redis = start_redis(redis_port, tmp)
    runs: dict[str, list[dict[str, float]]] = {"redis_only": [], "tiered": []}
    try:
        for _ in range(args.rounds):
            for name, near in (("redis_only", 0), ("tiered", 10_000)):
                process, base = start(store.root, redis_port, near)
                try:
                    runs[name].append(asyncio.run(drive(base, users, args.seconds, args.concurrency)))
                finally:
                    process.terminate()
                    process.wait()
    finally:
        redis.terminate()
        redis.wait()
    summary = {
        name: {key: round(statistics.median(r[key] for r in rs), 2) for key in rs[0]}
        for name, rs in runs.items()
    }
    ratio = round(summary["tiered"]["rps"] / summary["redis_only"]["rps"], 3)
    meta = {
        **common.run_metadata(),
        **vars(args),
    }
    commit = meta["commit"]
    meta["out"] = str(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"meta": meta, "runs": runs, "median": summary, "tiered_over_redis_rps": ratio}, indent=2)
    )
    lines = [
        f"Cache hits only, 1 worker, {args.concurrency} concurrent asyncio clients in the same machine, "
        f"{args.rounds} alternating rounds of {args.seconds:g} s; medians. {meta['cpus']} CPUs, "
        f"{meta['date']}, commit {commit}.",
        "",
        "| cache | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(f"| {name} | {s['rps']} | {s['p50_ms']} | {s['p99_ms']} |")
    lines += ["", f"Tiered / Redis-only throughput: {ratio}x."]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
