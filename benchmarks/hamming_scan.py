"""The flat Hamming scan alone: faiss IndexBinaryFlat against the service's numba scan.

For each catalogue size and code length: queries/s of an exact top-C Hamming search (C = 200) at
one query per call, in one thread, for

- ``faiss``: faiss IndexBinaryFlat.search;
- ``numba_<chunk>``: ``retrieval.kernels.hamming_knn_kernel`` scanning in chunks of that many codes
  (each chunk's distances in one vectorized pass, then a vectorized threshold test per 64 codes);
  ``numba_all`` scans the whole catalogue as one chunk. The service uses
  ``retrieval.kernels.SCAN_CHUNK_ITEMS``. With ``--prefetch-bytes``, each numba scan is timed at
  each software prefetch distance given (``numba_<chunk>_pf<bytes>``, 0: none), side by side in
  one run; otherwise at this CPU's default (``retrieval.kernels.default_prefetch_bytes``).

Every method must return faiss's exact top-C (distances, rows and tie order) on the first 50
queries, or the script stops. Codes are sign codes of serving_core.py's clustered vectors under a
random projection. Also measured in the same process: DRAM read bandwidth, to read the scan's
bytes of codes per second against.

    flock /tmp/hashrec-heavy.lock python benchmarks/hamming_scan.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common
from hashrec.retrieval.kernels import SCAN_CHUNK_ITEMS, default_prefetch_bytes, hamming_knn_kernel
from serving_core import dram_bandwidth, generate, rate


def numba_methods(chunks: list[int], prefetch: list[int] | None) -> dict[str, tuple[int, int | None]]:
    """Name -> (chunk, prefetch bytes) of each numba scan timed; without ``prefetch``, the CPU's
    default prefetch and names without a suffix."""
    found: dict[str, tuple[int, int | None]] = {}
    for c in chunks:
        base = f"numba_{c}" if c else "numba_all"
        for p in prefetch if prefetch is not None else [None]:
            found[base if p is None else f"{base}_pf{p}"] = (c, p)
    return found


def method_names(config: dict[str, Any]) -> list[str]:
    return ["faiss", *numba_methods(config["chunks"], config.get("prefetch_bytes"))]


def service_method(config: dict[str, Any]) -> str:
    """The method that scans as the service does here: its chunk and this CPU's prefetch."""
    if config.get("prefetch_bytes") is None:
        return f"numba_{SCAN_CHUNK_ITEMS}"
    return f"numba_{SCAN_CHUNK_ITEMS}_pf{config['default_prefetch_bytes']}"


def sign_codes(vectors: np.ndarray, bits: int, seed: int = 0) -> np.ndarray:
    """Packed sign codes of a random projection, computed in chunks."""
    projection = np.random.default_rng(seed).standard_normal((vectors.shape[1], bits)).astype(np.float32)
    codes = np.empty((len(vectors), bits // 8), np.uint8)
    for start in range(0, len(vectors), 1_000_000):
        codes[start : start + 1_000_000] = np.packbits(
            vectors[start : start + 1_000_000] @ projection > 0, axis=1
        )
    return codes


def searches(codes: np.ndarray, queries: np.ndarray, c: int, args: argparse.Namespace) -> dict[str, Any]:
    """Each method as fn(lo, hi) -> (distances, rows) over query rows lo..hi-1."""
    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(codes)
    words = codes.view(np.uint64).ravel()
    found: dict[str, Any] = {"faiss": lambda lo, hi: index.search(queries[lo:hi], c)}
    for name, (chunk, prefetch) in numba_methods(args.chunks, args.prefetch_bytes).items():
        size = chunk or len(codes)
        found[name] = lambda lo, hi, size=size, prefetch=prefetch: hamming_knn_kernel(
            words, queries[lo:hi], c, size, prefetch
        )
    return found


def run(n: int, bits: int, args: argparse.Namespace, bandwidth: float) -> dict[str, Any]:
    items, queries = generate(n, args.queries, seed=n % 1000)
    codes, query_codes = sign_codes(items, bits), sign_codes(queries, bits)
    del items
    found = searches(codes, query_codes, args.candidates, args)
    expected = found["faiss"](0, 50)
    row: dict[str, Any] = {"n_items": n, "bits": bits}
    for name in found:
        got = found[name](0, 50)
        if not (np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])):
            raise SystemExit(f"{name} differs from faiss at N={n}, {bits} bits")
        qps = rate(found[name], len(query_codes), 1, args.budget_s)
        row[name] = {
            "qps_1": round(qps, 1),
            "gb_s": round(qps * codes.nbytes / 1e9, 2),
            "fraction_of_dram": round(qps * codes.nbytes / bandwidth, 3),
        }
    print(json.dumps(row), flush=True)
    return row


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    m = results["meta"]
    names = method_names(results["config"])
    service = service_method(results["config"])
    lines = [
        f"{m['cpus']} CPUs, {m['date']}, commit {m['commit']}, faiss {m['faiss']}; one thread, one "
        f"query per call, exact top-{results['config']['candidates']}; DRAM read bandwidth "
        f"{results['dram_gb_s']} GB/s. Every method returned faiss's exact top-C (checked on 50 "
        f"queries). Queries/s; the service scans in chunks of {SCAN_CHUNK_ITEMS:,} codes and, on this "
        f"CPU, prefetches {results['config']['default_prefetch_bytes']} bytes ahead (`_pf<bytes>`: "
        "the prefetch distance timed).",
        "",
        f"| items | bits | {' | '.join(names)} | {service} / faiss | best, fraction of DRAM bandwidth |",
        "|---|---|" + "---|" * (len(names) + 2),
    ]
    for r in results["runs"]:
        best = max(names, key=lambda name: r[name]["qps_1"])
        ratio = f"{r[service]['qps_1'] / r['faiss']['qps_1']:.2f}" if service in r else ""
        lines.append(
            f"| {r['n_items']:,} | {r['bits']} | "
            + " | ".join(f"{r[name]['qps_1']:,.0f}" for name in names)
            + f" | {ratio} | {best}, {r[best]['fraction_of_dram']:.2f} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, out)


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bits_list = sorted({r["bits"] for r in results["runs"]})
    fig, axes = plt.subplots(1, len(bits_list), figsize=(5 * len(bits_list), 4), squeeze=False)
    for ax, bits in zip(axes[0], bits_list, strict=True):
        runs = [r for r in results["runs"] if r["bits"] == bits]
        for name in method_names(results["config"]):
            ax.plot([r["n_items"] for r in runs], [r[name]["qps_1"] for r in runs], "o-", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items (N)")
        ax.set_title(f"{bits}-bit codes: queries/s, top-{results['config']['candidates']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"flat Hamming scan, one thread ({results['meta']['date']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "scan_vs_n.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[40_000, 200_000, 1_000_000, 4_000_000])
    parser.add_argument("--bits", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[8192, SCAN_CHUNK_ITEMS, 131072, 0],
        help="numba scan chunk sizes to time; 0: the whole catalogue as one chunk",
    )
    parser.add_argument(
        "--prefetch-bytes",
        type=int,
        nargs="+",
        help="time each numba scan at each of these prefetch distances (0: none); default: the CPU's",
    )
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--budget-s", type=float, default=2.0, help="seconds per throughput measurement")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/hamming_scan"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    bandwidth = dram_bandwidth()
    meta = {**common.run_metadata(), "faiss": faiss.__version__}
    runs = [run(n, bits, args, bandwidth) for n in args.sizes for bits in args.bits]
    config = {
        "candidates": args.candidates,
        "chunks": args.chunks,
        "prefetch_bytes": args.prefetch_bytes,
        "default_prefetch_bytes": default_prefetch_bytes(),
        "queries": args.queries,
        "budget_s": args.budget_s,
    }
    write({"meta": meta, "config": config, "dram_gb_s": round(bandwidth / 1e9, 2), "runs": runs}, args.out)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
