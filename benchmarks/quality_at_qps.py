"""Quality at a given throughput on real data: Recall@20 of the served ranking against queries/s.

On a dataset (Gowalla by default), the indexer's own pipeline makes the model (closed-form encoder
of ``--dim``, learned ``--bits`` codes); then for every search method and setting the service's own
searcher is timed at one query per call (one faiss thread, ``--timing-users`` known users with
their training items excluded) and scored on the whole test split. Methods:

- ``exact``: inner product over every item (ExactSearcher);
- ``flat``: Hamming top-C over every code (numba scan when installed) + exact rerank, C in ``--candidates``;
- ``ivf``: binary IVF top-C (nlist as ``hashrec index`` chooses) + rerank, nprobe in ``--nprobes``, C = 200;
- ``hamming``: Hamming top-20 alone (no rerank);
- ``flat float16`` / ``flat int8``: the flat two-stage at C = 200 with smaller rerank vectors.

Writes ``results.json``, ``results.md`` and ``recall_vs_qps.png`` (one curve per method) into ``--out``.

    flock /tmp/hashrec-heavy.lock python benchmarks/quality_at_qps.py --data ../shared/datasets/gowalla
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import load_interactions
from hashrec.indexer.pipeline import make_quantizer, recommender_arrays, train_embeddings
from hashrec.indexer.ranking_metrics import paired_bootstrap, per_user_metrics
from hashrec.retrieval.model import ServingModel, build_binary_index
from hashrec.retrieval.search import (
    ExactSearcher,
    HammingSearcher,
    Searcher,
    two_stage_searcher,
)

sys.path.insert(0, str(Path(__file__).parent))
import common


def queries_per_second(searcher: Searcher, users: np.ndarray, budget_s: float) -> float:
    """One known user per call, over ``users`` in turn, for about ``budget_s`` seconds."""
    for user in users[:20]:  # warm (JIT, caches)
        searcher.search_users(np.array([user]), 20)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget_s:
        searcher.search_users(np.array([users[done % len(users)]]), 20)
        done += 1
    return done / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)
    data = load_interactions(args.data)
    cfg = IndexConfig(
        encoder=EncoderConfig(name="gfcf", dim=args.dim, spectral_power=args.spectral_power),
        quantizer=QuantizerConfig(bits=args.bits),
        progress=False,
        seed=args.seed,
    )
    users, items, _ = train_embeddings(data, cfg)
    arrays = recommender_arrays(
        data, users, items, make_quantizer(replace(cfg, quantizer=replace(cfg.quantizer, name="learned")))
    )
    flat = ServingModel.from_arrays("flat", arrays)
    rng = np.random.default_rng(args.seed)
    with_test = np.flatnonzero(np.diff(data.test.indptr) > 0)
    timing_users = rng.choice(with_test, min(args.timing_users, len(with_test)), replace=False)
    rows: list[dict[str, Any]] = []
    exact_recall: list[np.ndarray] = []  # per user, the reference of every paired difference

    def measure(method: str, setting: str, searcher: Searcher) -> None:
        qps = queries_per_second(searcher, timing_users, args.budget_s)
        values = per_user_metrics(lambda users, k: searcher.search_users(users, k).items, data.test)
        recall, ndcg = values["recall@20"], values["ndcg@20"]
        if not exact_recall:  # exact search is measured first
            exact_recall.append(recall)
        diff = paired_bootstrap(recall, exact_recall[0], seed=args.seed)
        rows.append(
            {
                "method": method,
                "setting": setting,
                "qps": round(qps, 1),
                "recall@20": round(float(recall.mean()), 6),
                "ndcg@20": round(float(ndcg.mean()), 6),
                "users": len(recall),
                "recall@20_minus_exact": [round(v, 6) for v in diff],
            }
        )
        logging.info("%s %s: %.0f q/s, R@20 %.4f (%+.4f)", method, setting, qps, recall.mean(), diff[0])

    measure("exact", "all items", ExactSearcher(flat))
    measure("hamming", "top-20 codes", HammingSearcher(flat))
    for c in args.candidates:
        measure("flat", f"C={c}", two_stage_searcher(flat, candidates=c))
    for dtype in ("float16", "int8"):  # smaller rerank vectors, same codes and C
        small = ServingModel.from_arrays(dtype, arrays, rerank_dtype=dtype)
        measure(f"flat {dtype}", "C=200", two_stage_searcher(small, candidates=200))
    ivf_index = build_binary_index(arrays["item_codes"], "ivf", seed=args.seed)
    nlist = int(ivf_index.nlist)
    for nprobe in args.nprobes:
        ivf_index.nprobe = min(nprobe, nlist)
        ivf = ServingModel.from_arrays("ivf", arrays, binary_index=ivf_index)
        measure(
            "ivf",
            f"nlist={nlist}, nprobe={min(nprobe, nlist)}, C=200",
            two_stage_searcher(ivf, candidates=200),
        )
    return {
        "rows": rows,
        "meta": {**common.run_metadata(), "data": str(args.data), "n_items": data.n_items},
        "config": {k: v for k, v in vars(args).items() if k != "out"},
    }


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    m, cfg = result["meta"], result["config"]
    lines = [
        f"Data `{m['data']}` ({m['n_items']:,} items); closed form rank {cfg['dim']}, "
        f"spectral power {cfg.get('spectral_power', 0.0)}, "
        f"learned {cfg['bits']}-bit codes; one query per call, one faiss thread; "
        f"{m['cpus']} CPUs, {m['date']}, commit {m['commit']}.",
        "",
        "| method | setting | queries/s | Recall@20 | minus exact's, 95% interval | NDCG@20 |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        diff = r.get("recall@20_minus_exact")  # absent in results written before it existed
        interval = f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]" if diff else ""
        lines.append(
            f"| {r['method']} | {r['setting']} | {r['qps']:,.0f} | "
            f"{r['recall@20']:.4f} | {interval} | {r['ndcg@20']:.4f} |"
        )
    lines += [
        "",
        "The interval is a paired bootstrap over users (2,000 resamples) of the Recall@20 difference from "
        "exact search; one that holds 0 means the two rankings are not told apart on this test split.",
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(result["rows"], out / "recall_vs_qps.png", m)


def plot(rows: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers: tuple[tuple[str, str], ...] = (("exact", "s"), ("hamming", "^"), ("flat", "o"), ("ivf", "D"))
    markers += (("flat float16", "v"), ("flat int8", "P"))
    for method, marker in markers:
        mine = [r for r in rows if r["method"] == method]  # in the order of the setting
        if not mine:
            continue
        ax.plot([r["qps"] for r in mine], [r["recall@20"] for r in mine], marker=marker, label=method)
        for r in mine:
            if method in ("flat", "ivf"):
                label = r["setting"].split(", ")[-2] if method == "ivf" else r["setting"]
                ax.annotate(
                    label, (r["qps"], r["recall@20"]), fontsize=7, xytext=(3, -9), textcoords="offset points"
                )
    ax.set_xscale("log")
    ax.set_xlabel("queries/s, one query per call (log scale)")
    ax.set_ylabel("Recall@20 of the final ranking")
    ax.set_title(f"Recall@20 against throughput ({meta['cpus']} CPUs, {meta['date'][:10]})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/gowalla"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/quality_at_qps"))
    parser.add_argument("--dim", type=int, default=256, help="closed-form rank (0: chosen on a holdout)")
    parser.add_argument(
        "--spectral-power", type=float, default=0.0, help="closed-form spectral weight p (0: ideal filter)"
    )
    parser.add_argument("--bits", type=int, default=128)
    parser.add_argument("--candidates", type=int, nargs="+", default=[25, 50, 100, 200, 400, 800])
    parser.add_argument("--nprobes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--timing-users", type=int, default=2000)
    parser.add_argument("--budget-s", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replot", action="store_true", help="redraw from --out/results.json")
    args = parser.parse_args()
    if args.replot:
        write(json.loads((args.out / "results.json").read_text()), args.out)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    write(run(args), args.out)


if __name__ == "__main__":
    main()
