"""HTTP ceiling vs POST /v1/recommend (cache miss and hit), same server process, same generator.

Publishes a synthetic catalogue (clustered embeddings, no training) to a temporary store and
starts one uvicorn worker on 127.0.0.1 twice: once with ``HASHREC_CACHE_ENABLED=false`` (every
recommend is a miss) and once with the in-process cache (recommend for users whose answers were
cached first: hits). Each process also serves a trivial JSON endpoint, mounted only here on the
app the benchmark builds with ``service.app.create_app`` (the service has no such route), so each
ratio is measured side by side in one process under one load generator (wrk, one thread,
``--connections`` connections; the server's worker and wrk take one core each). p50/p99 come
from wrk's latency distribution; "at half peak" runs wrk with a per-connection delay chosen
for about half the measured peak rate.

    flock /tmp/hashrec-heavy.lock python benchmarks/serving_http.py --items 40000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common

LUA = """
counter = 0
users = {users}
request = function()
  counter = counter + 1
  local body = '{{"user_id": "u' .. (counter % users) .. '", "k": 20}}'
  return wrk.format("POST", "{path}", {{["content-type"] = "application/json"}}, body)
end
{delay}
"""
#: endpoint name -> path; every one is POSTed the same recommend bodies
ENDPOINTS = {"bare": "/bare", "fastapi": "/fastapi", "recommend": "/v1/recommend"}
#: what the bare app and the FastAPI reference answer: a recommend answer's shape, 20 items
FIXED_ANSWER = {
    "user_id": "u0",
    "model_version": "fixed",
    "cached": False,
    "fallback": False,
    "items": [{"item_id": f"i{n}", "score": 1.0 - n / 100} for n in range(20)],
}


def bare_asgi(app: Any) -> Any:
    """``app`` behind a bare ASGI handler for ``POST /bare``: read the body, parse its JSON, answer a
    fixed 20-item body. No framework, no search: the server's own ceiling for this request."""
    import orjson

    body = orjson.dumps(FIXED_ANSWER)
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }

    async def ceiling(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/bare":
            await app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        orjson.loads(b"".join(chunks))
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return ceiling


def synthetic_store(root: Path, n_users: int, n_items: int, dim: int = 64, bits: int = 128) -> None:
    import scipy.sparse as sp
    from hashrec.indexer.pipeline import serving_arrays
    from hashrec.indexer.quantizers import SignQuantizer
    from hashrec.model_store import ModelStore
    from hashrec.retrieval.model import build_binary_index
    from hashrec.retrieval.schema import ITEM_INDEX_FILE

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    users = centres[rng.integers(0, 256, n_users)] + 0.7 * rng.standard_normal((n_users, dim), np.float32)
    items = centres[rng.integers(0, 256, n_items)] + 0.7 * rng.standard_normal((n_items, dim), np.float32)
    items *= rng.lognormal(0, 0.25, (n_items, 1)).astype(np.float32)
    rows = np.repeat(np.arange(n_users), 20)
    train = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, rng.integers(0, n_items, len(rows)))),
        shape=(n_users, n_items),
    )
    train.sum_duplicates()
    arrays = serving_arrays(train, users, items, SignQuantizer(bits))
    item_codes = arrays["item_codes"]
    blob = faiss.serialize_index_binary(build_binary_index(item_codes)).tobytes()
    ModelStore(root).publish(arrays, {ITEM_INDEX_FILE: blob}, bits=bits)


def benchmark_app() -> Any:
    """The service app (store from $HASHREC_BENCH_STORE) with the references mounted here only: a
    trivial GET route, a FastAPI ``def`` route with pydantic models of recommend's shape (no
    search), and in front of it all the bare ASGI ceiling."""
    from hashrec.service.app import create_app
    from hashrec.service.settings import Settings
    from pydantic import BaseModel

    class Asked(BaseModel):
        user_id: str
        k: int = 20

    class Item(BaseModel):
        item_id: str
        score: float

    class Answer(BaseModel):
        user_id: str
        model_version: str
        cached: bool
        fallback: bool
        items: list[Item]

    app = create_app(
        Settings(store=Path(os.environ["HASHREC_BENCH_STORE"]), poll_interval_s=0, log_level="warning")
    )

    @app.get("/trivial")
    async def trivial() -> dict[str, object]:
        return {"ok": True, "model_version": "trivial"}

    @app.post("/fastapi", response_model=Answer)
    def fastapi_reference(asked: Asked) -> Answer:
        return Answer.model_validate(FIXED_ANSWER)

    return bare_asgi(app)


def serve(store: Path, port: int, workers: int) -> None:
    """The server process: ``benchmark_app`` on one uvicorn with ``workers`` workers."""
    import uvicorn

    os.environ["HASHREC_BENCH_STORE"] = str(store)
    uvicorn.run(
        "serving_http:benchmark_app",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def wrk(url: str, script: Path | None, seconds: int, connections: int) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    text = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    lat = {p: _ms(m) for p, m in re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M)}
    return {
        "rps": round(rps, 1),
        "p50_ms": lat["50"],
        "p99_ms": lat["99"],
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def locust(
    base: str, target: str, users: int, seconds: int, connections: int, tmp: Path, user_rps: float = 0.0
) -> dict[str, float]:
    """Locust (FastHttpUser, one process) with ``connections`` users on one endpoint; wrk's keys."""
    prefix = tmp / f"locust-{target}-{user_rps:g}"
    env = {**os.environ, "CEILING_TARGET": target, "CEILING_USERS": str(users)}
    env["CEILING_USER_RPS"] = str(user_rps)
    cmd = ["locust", "-f", str(Path(__file__).parent / "locust_ceiling.py"), "--headless"]
    cmd += ["-u", str(connections), "-r", str(connections), "-t", f"{seconds}s", "--host", base]
    cmd += ["--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"]
    subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    return {
        "rps": round(float(row["Requests/s"]), 1),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "non_2xx": int(row["Failure Count"]),
    }


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))  # type: ignore[union-attr]
    unit = value[len(re.match(r"[\d.]+", value).group(0)) :]  # type: ignore[union-attr]
    return round(number * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)


def measure(store: Path, port: int, cache: bool, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, "HASHREC_CACHE_ENABLED": str(cache).lower(), "HASHREC_FAISS_THREADS": "1"}
    env["HASHREC_CACHE_SIZE"] = str(max(100_000, args.users * 2))
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--store",
            str(store),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        common.wait_ready(base, process, timeout_s=120)
        users = args.users if not cache else args.hit_users
        if cache:  # fill the cache for the users the hit run asks for
            with httpx.Client(base_url=base, timeout=30) as client:
                for u in range(users):
                    client.post("/v1/recommend", json={"user_id": f"u{u}", "k": 20}).raise_for_status()
        if args.generator == "locust":
            return _measure_locust(base, users, args, tmp)
        scripts = {}
        for name, path in ENDPOINTS.items():
            scripts[name] = tmp / f"{name}-{int(cache)}.lua"
            scripts[name].write_text(LUA.format(users=users, delay="", path=path))
            wrk(base, scripts[name], 2, args.connections)  # warm
        out: dict[str, Any] = {}
        for name, script in scripts.items():
            peak = wrk(base, script, args.seconds, args.connections)
            per_conn_ms = 1000 * args.connections / (peak["rps"] / 2)
            delayed = tmp / f"{name}-{int(cache)}-half.lua"
            delay = f"delay = function() return {per_conn_ms:.3f} end"
            delayed.write_text(LUA.format(users=users, delay=delay, path=ENDPOINTS[name]))
            half = wrk(base, delayed, args.seconds, args.connections)
            out[name] = {"peak": peak, "half_peak": half}
        out["trivial"] = out["fastapi"]  # the reference the older records call trivial
        out["ratio"] = round(out["recommend"]["peak"]["rps"] / out["fastapi"]["peak"]["rps"], 3)
        out["ratio_bare"] = round(out["recommend"]["peak"]["rps"] / out["bare"]["peak"]["rps"], 3)
        out["fastapi_ratio_bare"] = round(out["fastapi"]["peak"]["rps"] / out["bare"]["peak"]["rps"], 3)
        return out
    finally:
        process.terminate()
        process.wait(timeout=30)


def _measure_locust(base: str, users: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The trivial route and recommend at peak and at about half the peak rate, with Locust."""
    locust(base, "trivial", users, 2, args.connections, tmp)  # warm
    out: dict[str, Any] = {}
    for name in ("trivial", "recommend"):
        peak = locust(base, name, users, args.seconds, args.connections, tmp)
        per_user_rps = peak["rps"] / 2 / args.connections
        half = locust(base, name, users, args.seconds, args.connections, tmp, per_user_rps)
        out[name] = {"peak": peak, "half_peak": half}
    out["ratio"] = round(out["recommend"]["peak"]["rps"] / out["trivial"]["peak"]["rps"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--hit-users", type=int, default=2_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the server")
    parser.add_argument(
        "--generator", choices=["wrk", "locust"], default="wrk", help="Load generator (Locust: one process)."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/serving_http"))
    args = parser.parse_args()
    if args.serve:
        serve(args.store, args.port, args.workers)
        return
    if args.generator == "wrk" and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="hashrec-http-") as name:
        tmp = Path(name)
        synthetic_store(tmp / "store", args.users, args.items)
        results = {
            "miss": measure(tmp / "store", args.port, False, args, tmp),
            "hit": measure(tmp / "store", args.port + 1, True, args, tmp),
        }
    import importlib.metadata as md

    wrk_version = ""
    if args.generator == "wrk":
        wrk_run = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk_version = wrk_run.stdout.split("\n")[0]
    meta = {
        **common.run_metadata(),
        "versions": {
            p: md.version(p) for p in ("fastapi", "uvicorn", "uvloop", "httptools", "pydantic", "faiss-cpu")
        },
        "generator": args.generator,
        "wrk": wrk_version.strip() if args.generator == "wrk" else None,
        "locust": md.version("locust") if args.generator == "locust" else None,
        "items": args.items,
        "users": args.users,
        "connections": args.connections,
        "seconds": args.seconds,
        "workers": args.workers,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"{meta['cpu']}, {meta['cpus']} CPUs, {meta['date']}, commit {meta['commit']}, "
        f"python {meta['python']}, "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; {_generator_text(meta, args)}; "
        f"{args.items:,} items, {args.users:,} users, k = 20, C = 200"
        + "".join(f"; {key}={value}" for key, value in meta["hashrec_env"].items())
        + ".",
        "",
        "| server process | endpoint | req/s (peak) | p50 ms | p99 ms | req/s at ~half peak | p50 ms "
        "| p99 ms | / bare (peak) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {"miss": "cache off (every recommend a miss)", "hit": "in-process cache (hits)"}
    for case in results:
        label = labels[case]
        r = results[case]
        for endpoint in _endpoints(r):
            p, h = r[endpoint]["peak"], r[endpoint]["half_peak"]
            ratio = round(p["rps"] / r["bare"]["peak"]["rps"], 3) if "bare" in r else ""
            lines.append(
                f"| {label} | {endpoint} | {p['rps']:,.0f} | {p['p50_ms']} | {p['p99_ms']} | "
                f"{h['rps']:,.0f} | {h['p50_ms']} | {h['p99_ms']} | {ratio} |"
            )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, args.out, args.generator)
    print("\n".join(lines))


def _endpoints(case: dict[str, Any]) -> list[str]:
    """The endpoints a case measured: bare, fastapi, recommend (wrk) or trivial, recommend (Locust)."""
    return (
        [e for e in ("bare", "fastapi", "recommend") if e in case]
        if "bare" in case
        else ["trivial", "recommend"]
    )


def _generator_text(meta: dict[str, Any], args: argparse.Namespace) -> str:
    workers = f"{args.workers} uvicorn worker{'s' if args.workers > 1 else ''}"
    if args.generator == "locust":
        users = f"{args.connections} users, {args.seconds}s"
        return f"{workers}, Locust {meta['locust']} FastHttpUser (one process), {users}"
    return f"{meta['wrk']}; {workers}, wrk -t1 -c{args.connections} -d{args.seconds}s"


def plot(results: dict[str, Any], out: Path, generator: str = "wrk") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colours = [], [], []
    names = {"miss": "cache off", "hit": "cache hit"}
    for case in results:
        name = names.get(case, f"batch {case.removeprefix('miss_mb')} ms")
        for endpoint in _endpoints(results[case]):
            labels.append(f"{endpoint}\n({name})")
            values.append(results[case][endpoint]["peak"]["rps"])
            colours.append(
                {"bare": "#555", "fastapi": "#999", "trivial": "#999"}.get(endpoint)
                or ("#3a6" if case == "hit" else "#36c")
            )
    fig, ax = plt.subplots(figsize=(4 * len(results), 4))
    ax.bar(labels, values, color=colours)
    ax.set_ylabel(f"requests/s ({generator})")
    ax.set_title("HTTP ceiling vs POST /v1/recommend")
    fig.tight_layout()
    fig.savefig(out / "http_ceiling.png", dpi=110)


if __name__ == "__main__":
    main()
