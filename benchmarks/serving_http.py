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
  return wrk.format("POST", "/v1/recommend", {{["content-type"] = "application/json"}}, body)
end
{delay}
"""


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


def serve(store: Path, port: int) -> None:
    """The server process: the service app plus a trivial JSON route mounted here only."""
    import uvicorn
    from hashrec.service.app import create_app
    from hashrec.service.settings import Settings

    app = create_app(Settings(store=store, poll_interval_s=0, log_level="warning"))

    @app.get("/trivial")
    async def trivial() -> dict[str, object]:
        return {"ok": True, "model_version": "trivial"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


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
        [sys.executable, __file__, "--serve", "--store", str(store), "--port", str(port)], env=env
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
        script = tmp / f"rec-{int(cache)}.lua"
        script.write_text(LUA.format(users=users, delay=""))
        wrk(f"{base}/trivial", None, 2, args.connections)  # warm
        wrk(base, script, 2, args.connections)
        out: dict[str, Any] = {}
        for name, sc in (("trivial", None), ("recommend", script)):
            url = f"{base}/trivial" if sc is None else base
            peak = wrk(url, sc, args.seconds, args.connections)
            rate = peak["rps"] / 2
            per_conn_ms = 1000 * args.connections / rate
            delayed = tmp / f"{name}-{int(cache)}-half.lua"
            body = LUA.format(users=users, delay=f"delay = function() return {per_conn_ms:.3f} end")
            if sc is None:
                body = f"delay = function() return {per_conn_ms:.3f} end\n"
            delayed.write_text(body)
            half = wrk(url, delayed, args.seconds, args.connections)
            out[name] = {"peak": peak, "half_peak": half}
        out["ratio"] = round(out["recommend"]["peak"]["rps"] / out["trivial"]["peak"]["rps"], 3)
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
    parser.add_argument(
        "--generator", choices=["wrk", "locust"], default="wrk", help="Load generator (Locust: one process)."
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/serving_http"))
    args = parser.parse_args()
    if args.serve:
        serve(args.store, args.port)
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
        "| p99 ms | recommend / trivial |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    labels = {"miss": "cache off (every recommend a miss)", "hit": "in-process cache (hits)"}
    for case in results:
        label = labels[case]
        r = results[case]
        for endpoint in ("trivial", "recommend"):
            p, h = r[endpoint]["peak"], r[endpoint]["half_peak"]
            lines.append(
                f"| {label} | {endpoint} | {p['rps']:,.0f} | {p['p50_ms']} | {p['p99_ms']} | "
                f"{h['rps']:,.0f} | {h['p50_ms']} | {h['p99_ms']} | "
                f"{r['ratio'] if endpoint == 'recommend' else ''} |"
            )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, args.out, args.generator)
    print("\n".join(lines))


def _generator_text(meta: dict[str, Any], args: argparse.Namespace) -> str:
    if args.generator == "locust":
        users = f"{args.connections} users, {args.seconds}s"
        return f"one uvicorn worker, Locust {meta['locust']} FastHttpUser (one process), {users}"
    return f"{meta['wrk']}; one uvicorn worker, wrk -t1 -c{args.connections} -d{args.seconds}s"


def plot(results: dict[str, Any], out: Path, generator: str = "wrk") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colours = [], [], []
    names = {"miss": "cache off", "hit": "cache hit"}
    for case in results:
        name = names.get(case, f"batch {case.removeprefix('miss_mb')} ms")
        for endpoint in ("trivial", "recommend"):
            labels.append(f"{endpoint}\n({name})")
            values.append(results[case][endpoint]["peak"]["rps"])
            colours.append("#999" if endpoint == "trivial" else "#3a6" if case == "hit" else "#36c")
    fig, ax = plt.subplots(figsize=(4 * len(results), 4))
    ax.bar(labels, values, color=colours)
    ax.set_ylabel(f"requests/s ({generator}, 1 worker)")
    ax.set_title("HTTP ceiling vs POST /v1/recommend")
    fig.tight_layout()
    fig.savefig(out / "http_ceiling.png", dpi=110)


if __name__ == "__main__":
    main()
