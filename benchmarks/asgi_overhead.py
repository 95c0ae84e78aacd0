"""Per-request cost of the service app in-process, without a network or a load generator.

The ASGI app (``create_app``, with its middleware) is called directly, one request at a time, on a
generated catalogue: a trivial JSON route mounted here only, ``POST /v1/recommend`` answered from
the in-process cache (hit), and the same route with the cache off (miss: Hamming scan, rerank,
encoding), for known users and for visitors known by 10 recent items (``history``). Microseconds
per request, median of ``--repeats`` rounds; the ratio trivial / route is the in-process
counterpart of ``serving_http.py``'s ratio.

    python benchmarks/asgi_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402
from hashrec.loadtest.id_pool import id_strings  # noqa: E402
from hashrec.model_store import ModelStore  # noqa: E402
from hashrec.retrieval.model import build_binary_index  # noqa: E402
from hashrec.retrieval.schema import ITEM_INDEX_FILE  # noqa: E402
from hashrec.service.app import create_app  # noqa: E402
from hashrec.service.settings import Settings  # noqa: E402

from tests.conftest import planted_arrays  # noqa: E402


def make_app(root: Path, cache: bool) -> Any:
    app = create_app(Settings(store=root, poll_interval_s=0, log_level="warning", cache_enabled=cache))

    @app.get("/trivial")
    async def trivial() -> dict[str, object]:
        return {"ok": True, "model_version": "trivial"}

    return app


async def call(app: Any, method: str, path: str, body: bytes = b"") -> int:
    """One request through the ASGI app; returns the status."""
    headers = [(b"host", b"bench"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def per_request_us(app: Any, requests: list[tuple[str, str, bytes]], rounds: int) -> float:
    """Median over rounds of the mean microseconds per request."""
    for method, path, body in requests[:200]:  # warm
        assert await call(app, method, path, body) == 200
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for method, path, body in requests:
            await call(app, method, path, body)
        samples.append((time.perf_counter() - started) / len(requests) * 1e6)
    return statistics.median(samples)


HISTORY_LENGTH = 10


async def measure(
    root: Path, users: list[str], items: list[str], args: argparse.Namespace
) -> dict[str, float]:
    out: dict[str, float] = {}
    one_user = json.dumps({"user_id": users[0], "k": 20}).encode()
    many = [("POST", "/v1/recommend", json.dumps({"user_id": u, "k": 20}).encode()) for u in users]
    rng = np.random.default_rng(0)
    visitors = [  # no user_id: the query is built from the history of recent items
        (
            "POST",
            "/v1/recommend",
            json.dumps(
                {"history": rng.choice(items, HISTORY_LENGTH, replace=False).tolist(), "k": 20}
            ).encode(),
        )
        for _ in range(args.requests)
    ]
    for cache in (True, False):
        app = make_app(root, cache)
        async with app.router.lifespan_context(app):
            trivial = [("GET", "/trivial", b"")] * args.requests
            name = f"trivial_cache_{'on' if cache else 'off'}"
            out[name] = await per_request_us(app, trivial, args.repeats)
            if cache:
                hits = [("POST", "/v1/recommend", one_user)] * args.requests
                out["recommend_hit"] = await per_request_us(app, hits, args.repeats)
            else:
                out["recommend_miss"] = await per_request_us(app, many[: args.requests], args.repeats)
                out["recommend_visitor_miss"] = await per_request_us(app, visitors, args.repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/asgi_overhead"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        arrays = planted_arrays(n_users=args.users, n_items=args.items, dim=args.dim, bits=128)
        index = faiss.serialize_index_binary(build_binary_index(arrays["item_codes"])).tobytes()
        ModelStore(root).publish(arrays, {ITEM_INDEX_FILE: index}, bits=128)
        user_ids, item_ids = id_strings(arrays["user_ids"]), id_strings(arrays["item_ids"])
        timings = asyncio.run(measure(root, user_ids, item_ids, args))
    config = {k: str(v) for k, v in vars(args).items()}
    result: dict[str, Any] = {"meta": common.run_metadata(), "config": config, "us": timings}
    result["ratios"] = {
        "hit": round(timings["trivial_cache_on"] / timings["recommend_hit"], 3),
        "miss": round(timings["trivial_cache_off"] / timings["recommend_miss"], 3),
        "visitor_miss": round(timings["trivial_cache_off"] / timings["recommend_visitor_miss"], 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    m = result["meta"]
    lines = [
        f"{m['cpus']} CPUs, {m['date']}, commit {m['commit']}; {args.items:,} items, dim {args.dim}, "
        f"128-bit codes, one request at a time in-process; median of {args.repeats} rounds.",
        "",
        "| request | us per request | trivial / request |",
        "|---|---|---|",
        f"| trivial GET (cache on) | {timings['trivial_cache_on']:.1f} | |",
        f"| recommend, cache hit | {timings['recommend_hit']:.1f} | {result['ratios']['hit']} |",
        f"| trivial GET (cache off) | {timings['trivial_cache_off']:.1f} | |",
        f"| recommend, cache miss | {timings['recommend_miss']:.1f} | {result['ratios']['miss']} |",
        f"| recommend, cache miss, visitor ({HISTORY_LENGTH} items of history) | "
        f"{timings['recommend_visitor_miss']:.1f} | {result['ratios']['visitor_miss']} |",
    ]
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
