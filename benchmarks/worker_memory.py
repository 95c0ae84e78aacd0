"""Resident memory of `hashrec serve --workers N`: do the workers share the model through mmap?

Publishes a synthetic catalogue (random clustered embeddings, no training), starts the server
with 1 and with 4 workers on 127.0.0.1, sends a few requests, and reads each process's RSS and
PSS (proportional set size: shared pages divided among the processes that map them) from
/proc/PID/smaps_rollup. Linux only.

    python benchmarks/worker_memory.py --items 1000000 --out benchmarks/results/worker_memory
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import scipy.sparse as sp
from hashrec.indexer.pipeline import serving_arrays
from hashrec.indexer.quantizers import SignQuantizer
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import build_binary_index

sys.path.insert(0, str(Path(__file__).parent))
import common


def synthetic_arrays(n_users: int, n_items: int, dim: int, bits: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, dim)).astype(np.float32)
    users = centers[rng.integers(0, 64, n_users)] + 0.5 * rng.standard_normal((n_users, dim), np.float32)
    items = centers[rng.integers(0, 64, n_items)] + 0.5 * rng.standard_normal((n_items, dim), np.float32)
    rows = np.repeat(np.arange(n_users), 10)
    train = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, rng.integers(0, n_items, len(rows)))),
        shape=(n_users, n_items),
    )
    train.sum_duplicates()
    return serving_arrays(train, users, items, SignQuantizer(bits))


def memory_kib(pid: int) -> dict[str, int]:
    """RSS and PSS of one process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            values[key.lower()] = int(rest.split()[0])
    return values


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def measure(store: Path, workers: int, port: int) -> dict[str, object]:
    process, base = common.start_service(store, port, {"HASHREC_POLL_INTERVAL_S": "0"}, workers=workers)
    try:
        time.sleep(3 if workers > 1 else 0.5)  # let every worker finish loading
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(200):
                client.post("/v1/recommend", json={"user_id": f"u{i}", "k": 20})
        # uvicorn with workers > 1: a supervisor whose children (multiprocessing spawn) are workers;
        # with 1 worker the process itself serves.
        pids = [process.pid, *children(process.pid)]
        pids += [c for p in list(pids[1:]) for c in children(p)]
        per_process = {pid: memory_kib(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
        return {
            "workers": workers,
            "processes": len(per_process),
            "rss_mib_total": round(sum(v["rss"] for v in per_process.values()) / 1024, 1),
            "pss_mib_total": round(sum(v["pss"] for v in per_process.values()) / 1024, 1),
            "per_process": {str(pid): v for pid, v in per_process.items()},
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--bits", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/worker_memory"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hashrec-mem-") as tmp:
        store = ModelStore(Path(tmp) / "store")
        arrays = synthetic_arrays(args.users, args.items, args.dim, args.bits)
        import faiss

        index_bytes = faiss.serialize_index_binary(build_binary_index(arrays["item_codes"])).tobytes()
        store.publish(arrays, {"item_codes.faissindex": index_bytes}, bits=args.bits)
        artifact_mib = (
            sum(f.stat().st_size for f in (store.versions_dir / str(store.current())).iterdir()) / 2**20
        )
        del arrays
        results = [measure(store.root, workers, 8700 + workers) for workers in (1, 4)]
    meta = {
        **common.run_metadata(),
        "items": args.items,
        "users": args.users,
        "dim": args.dim,
        "bits": args.bits,
        "artifact_mib": round(artifact_mib, 1),
    }
    commit = meta["commit"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [
        f"{args.items:,} items x {args.dim} dims, {args.bits}-bit codes, {args.users:,} users; artifact "
        f"{meta['artifact_mib']} MiB. {meta['cpus']} CPUs, {meta['date']}, commit {commit}.",
        "",
        "| workers | processes | RSS total MiB | PSS total MiB |",
        "|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['workers']} | {r['processes']} | {r['rss_mib_total']} | {r['pss_mib_total']} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
