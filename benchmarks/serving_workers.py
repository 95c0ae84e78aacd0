"""`hashrec serve --workers N`: recommend throughput against the number of worker processes.

Serves one generated catalogue (as ``serving_http.py`` builds it) with ``hashrec serve --workers N``
for each N in ``--workers``, the answer cache off (every request a miss) and on (hits), and loads it
with wrk (one thread, ``--connections`` connections, random known users). wrk runs on the same
machine, so the numbers are what one box serving and loading itself gives: the question is which N
a user of this machine should run.

    flock /tmp/hashrec-heavy.lock python benchmarks/serving_workers.py --workers 1 2 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import common
from serving_http import LUA, synthetic_store, wrk


def measure(store: Path, port: int, workers: int, cache: bool, args: argparse.Namespace, tmp: Path) -> Any:
    env = {"HASHREC_CACHE_ENABLED": str(cache).lower(), "HASHREC_FAISS_THREADS": "1"}
    env["HASHREC_POLL_INTERVAL_S"] = "0"
    process, base = common.start_service(store, port, env, workers=workers)
    try:
        users = args.hit_users if cache else args.users
        script = tmp / f"rec-{int(cache)}.lua"
        script.write_text(LUA.format(users=users, delay=""))
        wrk(base, script, 3 if cache else 2, args.connections)  # warm (and fill every worker's cache)
        return wrk(base, script, args.seconds, args.connections)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--port", type=int, default=8890)
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--hit-users", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/serving_workers"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install -y wrk)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hashrec-workers-") as name:
        tmp = Path(name)
        synthetic_store(tmp / "store", args.users, args.items)
        for i, workers in enumerate(args.workers):
            for cache in (False, True):
                result = measure(tmp / "store", args.port + 2 * i + int(cache), workers, cache, args, tmp)
                rows.append({"workers": workers, "cache": cache, **result})
                print(rows[-1], flush=True)
    meta = {**common.run_metadata(), "config": {k: str(v) for k, v in vars(args).items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"{meta['cpus']} CPUs, {meta['date']}, commit {meta['commit']}; {args.items:,} items; wrk -t1 "
        f"-c{args.connections} -d{args.seconds}s on the same machine; one faiss thread per worker.",
        "",
        "| workers | cache | req/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        cached = "hits" if r["cache"] else "off (misses)"
        lines.append(
            f"| {r['workers']} | {cached} | {r['rps']:,.0f} | {r['p50_ms']} | {r['p99_ms']} "
            f"| {r['non_2xx']} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
