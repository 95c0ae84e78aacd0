"""Search core benchmark: queries/s, Recall@20 and bytes/item of the serving search methods vs N.

Generated embeddings with realistic structure (clustered, item norms varying about +-25% so the
inner product and the angle disagree), 128-bit sign codes after the MIPS-to-cosine reduction (the
indexer's quantizer), one faiss thread for every search. Methods, each scored by Recall@20 of its
final ranking against the exact inner-product top-20:

- ``exact_ip``: faiss IndexFlatIP over float32 vectors (the exact reference).
- ``two_stage_faiss``: faiss IndexBinaryFlat Hamming top-C (C = 200) + float32 rerank: the
  service's TwoStageSearcher with ``hamming_kernel="faiss"``.
- ``two_stage``: the same with the vectorized numba scan (the service default when numba is
  installed); ``two_stage_f16`` and ``two_stage_i8``: that with float16 / int8 rerank vectors.
- ``two_stage_ivf``: binary IVF (retrieval.model.build_binary_index "ivf", nprobe tuned for >= 0.95
  recall of the flat top-C) + rerank.
- ``two_stage_binary_hnsw``: faiss IndexBinaryHNSW (M = 16) for the Hamming top-C + rerank,
  efSearch the smallest of C..8C reaching 0.95 of the flat top-C (skipped above ``--hnsw-max``).
- ``hnsw``: faiss IndexHNSWFlat (inner product, M = 16) for reference, efSearch the smallest of
  16..512 reaching the two-stage's Recall@20 (skipped above ``--hnsw-max``); ``nsg``: faiss
  IndexNSGFlat (R = 32) the same way: up to ``--nsg-max`` items NSG builds its own exact kNN
  graph (quadratic), above that (up to ``--nsg-graph-max`` and ``--hnsw-max``) it is built on the
  HNSW index's 64-NN graph.

``--codes learned`` trains the indexer's LearnedQuantizer projection on a 200k-item sample and
4,000 training queries drawn like the evaluation queries, instead of the random projection.

Also measured in the same process: DRAM read bandwidth (numpy sum over a 1 GiB array) and the
flat Hamming scan alone (faiss and numba) in bytes of codes per second.

    flock /tmp/hashrec-heavy.lock python benchmarks/serving_core.py --sizes 40000 1000000
    flock /tmp/hashrec-heavy.lock python benchmarks/serving_core.py --sizes 40000 1000000 10000000 \
        --codes learned --out benchmarks/results/serving_core_10m
    flock /tmp/hashrec-heavy.lock python benchmarks/serving_core.py --sizes 10000000 \
        --codes learned --hnsw-max 10000000 --out benchmarks/results/serving_core_10m_hnsw
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
import faiss
import numpy as np
from hashrec.indexer.quantizers import random_projection
from hashrec.retrieval.model import (
    ServingModel,
    build_binary_index,
    flat_recall,
    hamming_knn_kernel,
    tune_nprobe,
)
from hashrec.retrieval.search import two_stage_searcher

DIM, BITS, K, C = 64, 128, 20, 200


def generate(n_items: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered item and query vectors; item norms vary (lognormal, sigma 0.25), in chunks."""
    rng = np.random.default_rng(seed)
    n_clusters = 1024
    centres = rng.standard_normal((n_clusters, DIM)).astype(np.float32)
    items = np.empty((n_items, DIM), np.float32)
    for start in range(0, n_items, 1_000_000):
        stop = min(n_items, start + 1_000_000)
        block = centres[rng.integers(0, n_clusters, stop - start)]
        block += 0.7 * rng.standard_normal(block.shape, dtype=np.float32)
        block *= rng.lognormal(0.0, 0.25, (stop - start, 1)).astype(np.float32)
        items[start:stop] = block
    queries = centres[rng.integers(0, n_clusters, n_queries)]
    queries = queries + 0.7 * rng.standard_normal(queries.shape, dtype=np.float32)
    return items, queries.astype(np.float32)


def learned_projection(
    items: np.ndarray, train_queries: np.ndarray, seed: int = 0, sample: int = 200_000
) -> np.ndarray:
    """indexer.quantizers.learned.LearnedQuantizer's projection, trained on a uniform sample of the
    items and on training queries drawn like the evaluation queries (same centres, other draws):
    the teacher's top-20 over the sample is distilled into the codes; the projection then encodes
    every item."""
    from hashrec.indexer.quantizers.learned import LearnedQuantizer

    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(len(items), min(sample, len(items)), replace=False))
    quantizer = LearnedQuantizer(BITS, seed=seed)
    quantizer.encode(train_queries, items[rows])
    return quantizer.projection


def encode(
    items: np.ndarray, queries: np.ndarray, seed: int = 0, train_queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Codes as the indexer makes them after the MIPS augmentation, computed in chunks (10M items
    fit): SignQuantizer's random projection, or with ``train_queries`` a learned one."""
    if train_queries is not None:
        projection = learned_projection(items, train_queries, seed)
    else:
        projection = random_projection(DIM + 1, BITS, seed)
    max_norm = float(
        max(np.linalg.norm(items[s : s + 1_000_000], axis=1).max() for s in range(0, len(items), 1_000_000))
    )
    item_codes = np.empty((len(items), BITS // 8), np.uint8)
    for start in range(0, len(items), 1_000_000):
        scaled = items[start : start + 1_000_000] / max_norm
        extra = np.sqrt(np.clip(1.0 - np.square(scaled).sum(axis=1), 0.0, None))
        item_codes[start : start + 1_000_000] = np.packbits(
            np.hstack([scaled, extra[:, None]]) @ projection > 0, axis=1
        )
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    query_codes = np.packbits(
        np.hstack([unit, np.zeros((len(unit), 1), np.float32)]) @ projection > 0, axis=1
    )
    return item_codes, query_codes


def serving_model(
    items: np.ndarray, item_codes: np.ndarray, index: Any = None, **options: Any
) -> ServingModel:
    """A ServingModel over the generated catalogue (no users, ids, or seen items needed here)."""
    n = len(items)
    arrays = {
        "user_ids": np.array(["u0"]),
        "item_ids": np.arange(n).astype(str) if n <= 2_000_000 else np.array(["i"] * n),
        "user_embeddings": items[:1],
        "item_embeddings": items,
        "user_codes": item_codes[:1],
        "item_codes": item_codes,
        "seen_indptr": np.zeros(2, np.int64),
        "seen_indices": np.zeros(0, np.int32),
        "item_popularity": np.zeros(n, np.int64),
    }
    return ServingModel.from_arrays(f"bench-{n}", arrays, binary_index=index, **options)


def rate(fn: Any, n_queries: int, batch: int, budget_s: float) -> float:
    """Queries per second of fn(start, stop) over consecutive query batches, within budget_s."""
    fn(0, batch)  # warm (JIT, caches)
    done, start = 0, time.perf_counter()
    while True:
        lo = done % max(1, n_queries - batch + 1)
        fn(lo, lo + batch)
        done += batch
        elapsed = time.perf_counter() - start
        if elapsed > budget_s or done >= 20 * n_queries:
            return done / elapsed


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean(
            [
                len(set(a.tolist()) & set(b.tolist())) / truth.shape[1]
                for a, b in zip(found, truth, strict=True)
            ]
        )
    )


def dram_bandwidth() -> float:
    """Bytes/s of numpy summing a 1 GiB float32 array (one core, best of 3)."""
    big = np.ones(1 << 28, np.float32)
    big.sum()
    best = min(_timed(big.sum) for _ in range(3))
    return big.nbytes / best


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def binary_hnsw(
    n: int,
    items: np.ndarray,
    queries: np.ndarray,
    item_codes: np.ndarray,
    query_codes: np.ndarray,
    record: Any,
) -> None:
    """Binary HNSW over the codes for the top-C (efSearch the smallest reaching 0.95 of the flat
    top-C, else the largest tried), then the same exact rerank."""
    code_bytes = BITS / 8
    started = time.perf_counter()
    bhnsw = faiss.IndexBinaryHNSW(BITS, 16)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
    bhnsw.add(item_codes)
    faiss.omp_set_num_threads(1)
    build_s = time.perf_counter() - started
    flat_top = build_binary_index(item_codes, "flat").search(query_codes, C)[1]
    for ef in (C, 2 * C, 4 * C, 8 * C):
        bhnsw.hnsw.efSearch = ef
        candidates = bhnsw.search(query_codes, C)[1]
        of_flat = recall_at_k(candidates, flat_top)
        if of_flat >= 0.95:
            break

    def bhnsw_two_stage(lo: int, hi: int, index: Any = bhnsw) -> np.ndarray:
        cand = index.search(query_codes[lo:hi], C)[1]
        scores = np.einsum("qd,qcd->qc", queries[lo:hi], items[cand])
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(np.take_along_axis(cand, top, axis=1), order, axis=1)

    links = bhnsw.hnsw.neighbors.size() * 4 + bhnsw.hnsw.offsets.size() * 8
    record(
        "two_stage_binary_hnsw",
        bhnsw_two_stage,
        bhnsw_two_stage(0, len(queries)),
        code_bytes + 4 * DIM + links / n,
        ef_search=ef,
        recall_of_flat_top_c=round(of_flat, 4),
        build_s=round(build_s, 1),
    )
    del bhnsw, bhnsw_two_stage


def run_size(n: int, args: argparse.Namespace, bandwidth: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    items, queries = generate(n, args.queries, seed=n % 1000)
    # Training queries for learned codes: the catalogue's centres, draws other than the queries'.
    train_queries = generate(1, 4_000, seed=n % 1000)[1] if args.codes == "learned" else None
    item_codes, query_codes = encode(items, queries, train_queries=train_queries)
    log(f"N={n:,}: generated in {time.perf_counter() - t0:.1f}s")
    out: dict[str, Any] = {"n_items": n, "methods": {}}
    budget = args.budget_s

    flat_ip = faiss.IndexFlatIP(DIM)
    flat_ip.add(items)
    _, truth = flat_ip.search(queries, K)
    methods = out["methods"]

    def record(name: str, search: Any, found: np.ndarray, bytes_per_item: float, **extra: Any) -> None:
        one = rate(search, len(queries), 1, budget)
        batched = rate(search, len(queries), args.batch, budget)
        methods[name] = {
            "qps_1": round(one, 1),
            f"qps_{args.batch}": round(batched, 1),
            "recall_at_20": round(recall_at_k(found, truth), 4),
            "bytes_per_item": round(bytes_per_item, 1),
            **extra,
        }
        log(f"  {name}: {methods[name]}")

    record(
        "exact_ip",
        lambda lo, hi, index=flat_ip: index.search(queries[lo:hi], K),
        truth,
        4 * DIM,
    )
    del flat_ip

    # Two-stage with faiss's scan, with the numba scan, with float16 and int8 rerank vectors.
    code_bytes = BITS / 8
    variants = (
        ("two_stage_faiss", {"hamming_kernel": "faiss"}, 4 * DIM),
        ("two_stage", {"hamming_kernel": "numba"}, 4 * DIM),
        ("two_stage_f16", {"hamming_kernel": "numba", "rerank_dtype": "float16"}, 2 * DIM),
        ("two_stage_i8", {"hamming_kernel": "numba", "rerank_dtype": "int8"}, DIM),  # + 4 * DIM in all
    )
    for name, options, rerank_bytes in variants:
        model = serving_model(items, item_codes, **options)
        searcher = two_stage_searcher(model, candidates=C)
        found = searcher.search(queries, query_codes, K).items
        record(
            name,
            lambda lo, hi, s=searcher: s.search(queries[lo:hi], query_codes[lo:hi], K),
            found,
            code_bytes + rerank_bytes,
            scan=model.scan,
        )
        if name == "two_stage":
            # stage split at one query per call: the scan for C, then the whole two-stage call
            scan = rate(lambda lo, hi, m=model: m.hamming_knn(query_codes[lo:hi], C), len(queries), 1, budget)
            methods[name]["scan_share_1"] = round(methods[name]["qps_1"] / scan, 3)
        del model, searcher

    # The flat Hamming scan alone, in bytes of codes per second, faiss and numba.
    flat_bin = build_binary_index(item_codes, "flat")
    words = item_codes.view(np.uint64).ravel()
    scan_faiss = rate(
        lambda lo, hi, index=flat_bin: index.search(query_codes[lo:hi], C), len(queries), 1, budget
    )
    scan_numba = rate(
        lambda lo, hi: hamming_knn_kernel(words, query_codes[lo:hi], C), len(queries), 1, budget
    )
    same = all(
        np.array_equal(a, b)
        for a, b in zip(
            flat_bin.search(query_codes[:50], C), hamming_knn_kernel(words, query_codes[:50], C), strict=True
        )
    )
    out["flat_scan"] = {
        "faiss_qps_1": round(scan_faiss, 1),
        "numba_qps_1": round(scan_numba, 1),
        "faiss_gb_s": round(scan_faiss * n * code_bytes / 1e9, 2),
        "numba_gb_s": round(scan_numba * n * code_bytes / 1e9, 2),
        "numba_over_faiss": round(scan_numba / scan_faiss, 2),
        "numba_fraction_of_dram": round(scan_numba * n * code_bytes / bandwidth, 3),
        "codes_mib": round(n * code_bytes / 2**20, 1),
        "numba_equals_faiss_top200": same,
    }
    log(f"  flat scan: {out['flat_scan']}")
    del flat_bin

    # Binary IVF, nprobe tuned on half the queries for >= 0.95 recall of the flat top-C.
    started = time.perf_counter()
    ivf = build_binary_index(item_codes, "ivf", nprobe=1)
    build_s = time.perf_counter() - started
    half = len(queries) // 2
    nprobe, _ = tune_nprobe(ivf, item_codes, query_codes[:half], C, target=0.95)
    held_out = flat_recall(ivf, item_codes, query_codes[half:], C, nprobe)
    model = serving_model(items, item_codes, index=ivf)
    searcher = two_stage_searcher(model, candidates=C)
    record(
        "two_stage_ivf",
        lambda lo, hi, s=searcher: s.search(queries[lo:hi], query_codes[lo:hi], K),
        searcher.search(queries, query_codes, K).items,
        code_bytes + 8 + 4 * DIM,  # codes + int64 id per inverted-list entry + rerank vector
        nlist=int(ivf.nlist),
        nprobe=nprobe,
        recall_of_flat_top_c=round(held_out, 4),
        build_s=round(build_s, 1),
    )
    del model, searcher, ivf

    if n <= args.hnsw_max:
        binary_hnsw(n, items, queries, item_codes, query_codes, record)
    else:
        log(f"  binary HNSW skipped above --hnsw-max {args.hnsw_max:,}")

    knn_graph: np.ndarray | None = None
    graph_s = 0.0
    if n <= args.hnsw_max:
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
        started = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        hnsw.add(items)
        build_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        target = methods["two_stage"]["recall_at_20"]
        for ef in (16, 32, 64, 128, 256, 512):
            hnsw.hnsw.efSearch = ef
            found = hnsw.search(queries, K)[1]
            if recall_at_k(found, truth) >= target:
                break
        links = hnsw.hnsw.neighbors.size() * 4 + hnsw.hnsw.offsets.size() * 8
        record(
            "hnsw",
            lambda lo, hi: hnsw.search(queries[lo:hi], K),
            found,
            4 * DIM + links / n,
            ef_search=ef,
            build_s=round(build_s, 1),
        )
        # NSG's own kNN-graph build is quadratic: above --nsg-max take the graph from HNSW.
        if args.nsg_max < n <= args.nsg_graph_max:
            faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
            started = time.perf_counter()
            knn_graph = hnsw_knn_graph(hnsw, items, NSG_GRAPH_K)
            graph_s = time.perf_counter() - started
            faiss.omp_set_num_threads(1)
        del hnsw
    if n <= args.nsg_max or knn_graph is not None:
        target = methods["two_stage"]["recall_at_20"]
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building only
        started = time.perf_counter()
        nsg = faiss.IndexNSGFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        if knn_graph is None:
            nsg.add(items)
        else:
            nsg.build(items, knn_graph)
            del knn_graph
        build_s = time.perf_counter() - started + graph_s
        faiss.omp_set_num_threads(1)
        for search_l in (16, 32, 64, 128, 256, 512):
            nsg.nsg.search_L = search_l
            found = nsg.search(queries, K)[1]
            if recall_at_k(found, truth) >= target:
                break
        record(
            "nsg",
            lambda lo, hi: nsg.search(queries[lo:hi], K),
            found,
            4 * DIM + 4 * 32,
            search_l=search_l,
            build_s=round(build_s, 1),
            graph="nsg brute force" if n <= args.nsg_max else f"hnsw {NSG_GRAPH_K}-NN",
        )
        del nsg
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return out


NSG_GRAPH_K = 64


def hnsw_knn_graph(hnsw: faiss.IndexHNSWFlat, items: np.ndarray, k: int) -> np.ndarray:
    """Each item's k nearest other items by the HNSW index (efSearch 128): NSG's input graph.

    Measured at 200k clustered items, 2 threads: 0.94 of the exact 65-NN lists; an NSG built on it
    reached within 0.06 Recall@20 of one built on the exact graph at every search_L from 16 to 256,
    and the graph search plus NSG build took 24 s against 82 s for the exact graph.
    """
    hnsw.hnsw.efSearch = 128
    _, graph = hnsw.search(items, k + 1)
    is_self = graph == np.arange(len(items))[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")  # the item itself (or the last column) goes last
    graph = np.take_along_axis(graph, order, axis=1)[:, :k]
    graph[graph < 0] = 0  # short lists (rare): point at item 0 rather than at nothing
    return np.ascontiguousarray(graph)


def log(message: str) -> None:
    print(message, flush=True)


def meta(codes: str) -> dict[str, Any]:
    import numba

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": common.machine_description(),
        "commit": common.git_commit("service"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "numba": numba.__version__,
        "faiss_threads": 1,
        "codes": codes,
        "dim": DIM,
        "bits": BITS,
        "candidates": C,
        "k": K,
    }


def write(results: dict[str, Any], out: Path, batch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    m = results["meta"]
    lines = [
        f"{m['machine']}; {m['date']}; commit {m['commit']}; python {m['python']}, numpy {m['numpy']}, "
        f"faiss {m['faiss']}, numba {m['numba']}; faiss threads 1; dim {m['dim']}, {m['bits']}-bit codes, "
        f"C = {m['candidates']}, Recall@{m['k']} against exact inner product. "
        f"DRAM read bandwidth (numpy sum, 1 GiB): {results['dram_gb_s']} GB/s.",
        "",
    ]
    for size in results["sizes"]:
        n = size["n_items"]
        exact = size["methods"]["exact_ip"]
        lines += [
            f"### N = {n:,}",
            "",
            f"| method | queries/s, 1 per call | queries/s, batch {batch} | x exact (1 / batch) "
            "| Recall@20 | bytes/item | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in size["methods"].items():
            notes = ", ".join(
                f"{k}={v}"
                for k, v in r.items()
                if k not in ("qps_1", f"qps_{batch}", "recall_at_20", "bytes_per_item")
            )
            lines.append(
                f"| {name} | {r['qps_1']:,.0f} | {r[f'qps_{batch}']:,.0f} | "
                f"{r['qps_1'] / exact['qps_1']:.1f} / {r[f'qps_{batch}'] / exact[f'qps_{batch}']:.1f} | "
                f"{r['recall_at_20']:.3f} | {r['bytes_per_item']:.0f} | {notes} |"
            )
        s = size["flat_scan"]
        lines += [
            "",
            f"Flat Hamming scan alone (top-{m['candidates']}, 1 query per call, {s['codes_mib']} MiB of "
            f"codes): faiss {s['faiss_qps_1']:,.0f} q/s = {s['faiss_gb_s']} GB/s; numba "
            f"{s['numba_qps_1']:,.0f} q/s = {s['numba_gb_s']} GB/s ({s['numba_over_faiss']}x faiss, "
            f"{s['numba_fraction_of_dram']:.2f} of DRAM bandwidth); identical top-200 to faiss: "
            f"{s['numba_equals_faiss_top200']}.",
            "",
        ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(results, out, batch)


def plot(results: dict[str, Any], out: Path, batch: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    names = sorted({name for s in sizes for name in s["methods"]})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name in names:
        xs = [s["n_items"] for s in sizes if name in s["methods"]]
        for ax, key in ((axes[0], "qps_1"), (axes[1], f"qps_{batch}")):
            ax.plot(xs, [s["methods"][name][key] for s in sizes if name in s["methods"]], "o-", label=name)
        axes[2].plot(
            xs,
            [s["methods"][name]["bytes_per_item"] for s in sizes if name in s["methods"]],
            "o-",
            label=name,
        )
    for ax, title in zip(
        axes, ("queries/s, 1 query per call", f"queries/s, batches of {batch}", "bytes per item"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items (N)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"hashrec search core, 1 faiss thread ({results['meta']['machine']}, {results['meta']['date']})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(out / "qps_bytes_vs_n.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[40_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budget-s", type=float, default=2.0, help="seconds per throughput measurement")
    parser.add_argument(
        "--hnsw-max", type=int, default=1_000_000, help="largest N that gets float and binary HNSW"
    )
    parser.add_argument(
        "--nsg-max",
        type=int,
        default=100_000,
        help="largest N whose NSG builds its own kNN graph (quadratic); above, up to --nsg-graph-max "
        "and --hnsw-max, the graph comes from the HNSW index",
    )
    parser.add_argument(
        "--nsg-graph-max",
        type=int,
        default=1_000_000,
        help="largest N that gets an NSG built on the HNSW graph (at 1M that took 929 s on 2 cores; "
        "it grows as N^1.8: benchmarks/nsg_build.py)",
    )
    parser.add_argument(
        "--codes", choices=("sign", "learned"), default="sign", help="how the 128-bit codes are made"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/serving_core"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    bandwidth = dram_bandwidth()
    log(f"DRAM read bandwidth {bandwidth / 1e9:.1f} GB/s")
    results: dict[str, Any] = {"meta": meta(args.codes), "dram_gb_s": round(bandwidth / 1e9, 2), "sizes": []}
    for n in args.sizes:
        results["sizes"].append(run_size(n, args, bandwidth))
        write(results, args.out, args.batch)  # partial results survive a later failure
    log((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
