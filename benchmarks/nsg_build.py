"""Why NSG is not built at 10M items: its build cost against N, inner product and the L2 reduction.

faiss IndexNSGFlat (R = 32) is built on a 64-NN graph taken from an HNSW index (as
``serving_core.py`` does above ``--nsg-max``), over the generated catalogue of ``serving_core.py``
(clustered, item norms varying about +-25%). Two graph metrics:

- ``ip``: the graph and the search use the inner product (what ``serving_core.py`` builds).
- ``l2``: the MIPS-to-L2 reduction: items get one more coordinate, sqrt(max |x|^2 - |x|^2), queries a
  zero, so the L2 nearest item is the largest inner product; NSG then builds and searches in L2.

For each, per N: the HNSW build, the graph search and the NSG build (2 threads, seconds); the share
of items that are in no other item's 64-NN list (nothing in the input graph leads to them); the
nodes NSG had to attach one by one after its build, read from faiss's verbose output (its tree
growth: one graph search each, serial); then Recall@20 against the exact inner-product top-20 and
queries/s (1 thread, all queries in one call) for search_L 16..128. The NSG build's growth exponent
is the log-log slope between the two largest sizes, and the 10M projection follows it.

    flock /tmp/hashrec-heavy.lock python benchmarks/nsg_build.py --sizes 100000 200000 500000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
import faiss
import numpy as np
from serving_core import DIM, K, generate, hnsw_knn_graph, recall_at_k

GRAPH_K = 64
SEARCH_LS = (16, 32, 64, 128)
PROJECT_TO = 10_000_000


@contextmanager
def captured_stdout(sink: list[str]) -> Iterator[None]:
    """What C++ code prints to file descriptor 1 inside the block, appended to ``sink``."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode(errors="replace"))


def reduce_to_l2(items: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One more coordinate each, so that L2 order over the items is inner-product order."""
    norms = np.einsum("ij,ij->i", items, items)
    extra = np.sqrt(norms.max() - norms).astype(np.float32)[:, None]
    return np.hstack([items, extra]), np.hstack([queries, np.zeros((len(queries), 1), np.float32)])


def measure(n: int, metric_name: str, n_queries: int) -> dict[str, Any]:
    items, queries = generate(n, n_queries, seed=n % 1000)
    truth = faiss.knn(queries, items, K, metric=faiss.METRIC_INNER_PRODUCT)[1]
    if metric_name == "l2":
        items, queries = reduce_to_l2(items, queries)
        metric = faiss.METRIC_L2
    else:
        metric = faiss.METRIC_INNER_PRODUCT
    dim = items.shape[1]
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, 16, metric)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(items)
    hnsw_s = time.perf_counter() - started
    started = time.perf_counter()
    graph = hnsw_knn_graph(hnsw, items, GRAPH_K)
    graph_s = time.perf_counter() - started
    del hnsw
    no_in_links = float(np.mean(np.bincount(graph.ravel(), minlength=n) == 0))
    nsg = faiss.IndexNSGFlat(dim, 32, metric)
    nsg.verbose = True
    printed: list[str] = []
    started = time.perf_counter()
    with captured_stdout(printed):
        nsg.build(items, graph)
    nsg_s = time.perf_counter() - started
    del graph
    attached = re.search(r"Attached nodes: (\d+)", "".join(printed))
    faiss.omp_set_num_threads(1)
    searches = []
    for search_l in SEARCH_LS:
        nsg.nsg.search_L = search_l
        started = time.perf_counter()
        found = nsg.search(queries, K)[1]
        seconds = time.perf_counter() - started
        searches.append(
            {
                "search_l": search_l,
                "recall_at_20": round(recall_at_k(found, truth), 4),
                "qps_1_thread": round(len(queries) / seconds, 1),
            }
        )
    result = {
        "n_items": n,
        "metric": metric_name,
        "hnsw_build_s": round(hnsw_s, 1),
        "graph_search_s": round(graph_s, 1),
        "nsg_build_s": round(nsg_s, 1),
        "no_in_links": round(no_in_links, 4),
        "attached_nodes": int(attached.group(1)) if attached else None,
        "searches": searches,
    }
    print(json.dumps(result), flush=True)
    return result


def growth(runs: list[dict[str, Any]], metric: str) -> dict[str, float] | None:
    """Log-log slope of the NSG build between the two largest sizes, and the projection to 10M."""
    points = sorted((r["n_items"], r["nsg_build_s"]) for r in runs if r["metric"] == metric)
    if len(points) < 2:
        return None
    (n1, s1), (n2, s2) = points[-2:]
    exponent = float(np.log(s2 / s1) / np.log(n2 / n1))
    total = next(r for r in runs if r["metric"] == metric and r["n_items"] == n2)
    return {
        "exponent": round(exponent, 2),
        "nsg_build_s_at_10m": round(s2 * (PROJECT_TO / n2) ** exponent),
        "linear_nsg_build_s_at_10m": round(s2 * PROJECT_TO / n2),
        "graph_s_at_largest": total["hnsw_build_s"] + total["graph_search_s"],
    }


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    m = results["meta"]
    lines = [
        f"{m['machine']}; {m['date']}; commit {m['commit']}; python {m['python']}, faiss {m['faiss']}; "
        f"dim {DIM}, NSG R = 32 on an HNSW {GRAPH_K}-NN graph, build on {m['build_threads']} threads, "
        "search on 1 thread; Recall@20 against the exact inner-product top-20.",
        "",
        "| metric | N | HNSW build s | graph search s | NSG build s | items in no 64-NN list "
        "| nodes attached one by one | Recall@20 / queries/s at search_L "
        + ", ".join(map(str, SEARCH_LS))
        + " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        searches = "; ".join(f"{s['recall_at_20']:.3f} / {s['qps_1_thread']:,.0f}" for s in r["searches"])
        lines.append(
            f"| {r['metric']} | {r['n_items']:,} | {r['hnsw_build_s']} | {r['graph_search_s']} | "
            f"{r['nsg_build_s']} | {r['no_in_links']:.3f} | {r['attached_nodes']} | {searches} |"
        )
    lines.append("")
    for metric, g in results["growth"].items():
        if g:
            lines.append(
                f"- {metric}: NSG build grows as N^{g['exponent']} between the two largest sizes; "
                f"projected to 10M items: {g['nsg_build_s_at_10m']:,} s "
                f"({g['linear_nsg_build_s_at_10m']:,} s if it grew only linearly), before the graph."
            )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, out)


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for metric in ("ip", "l2"):
        runs = sorted((r for r in results["runs"] if r["metric"] == metric), key=lambda r: r["n_items"])
        if not runs:
            continue
        ns = [r["n_items"] for r in runs]
        axes[0].plot(ns, [r["nsg_build_s"] for r in runs], "o-", label=f"NSG build, {metric}")
        axes[0].plot(
            ns, [r["hnsw_build_s"] + r["graph_search_s"] for r in runs], "s--", label=f"HNSW graph, {metric}"
        )
        largest = runs[-1]
        axes[1].plot(
            [s["qps_1_thread"] for s in largest["searches"]],
            [s["recall_at_20"] for s in largest["searches"]],
            "o-",
            label=f"{metric}, N = {largest['n_items']:,}",
        )
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("items (N)")
    axes[0].set_ylabel("seconds, 2 threads")
    axes[0].set_title("build time")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("queries/s, 1 thread")
    axes[1].set_ylabel("Recall@20")
    axes[1].set_title("search, search_L 16..128")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"faiss NSG build cost ({results['meta']['machine']}, {results['meta']['date']})", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(out / "nsg_build.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 500_000])
    parser.add_argument("--metrics", nargs="+", choices=("ip", "l2"), default=["ip", "l2"])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/nsg_build"))
    args = parser.parse_args()
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": common.machine_description(),
            "commit": common.git_commit("benchmarks"),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "build_threads": os.cpu_count() or 1,
        },
        "runs": [],
        "growth": {},
    }
    for metric in args.metrics:
        for n in args.sizes:
            results["runs"].append(measure(n, metric, args.queries))
            results["growth"] = {m: growth(results["runs"], m) for m in args.metrics}
            write(results, args.out)  # partial results survive a later failure
    print((args.out / "results.md").read_text(), flush=True)


if __name__ == "__main__":
    main()
