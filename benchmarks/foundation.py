"""Encoders x sign-code bits x candidates on a dataset: full precision, Hamming, served.

Trains each encoder once with the indexer's own code (``indexer.pipeline.train_embeddings``), then
encodes sign codes at several bit widths and evaluates with the service's own searchers.

    python benchmarks/foundation.py --data ../shared/datasets/gowalla --out benchmarks/runs/foundation

Writes ``results.json``, ``results.md`` and ``served_recall.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import load_interactions
from hashrec.indexer.pipeline import (
    make_quantizer,
    recommender_arrays,
    train_embeddings,
)
from hashrec.indexer.quantizers import QUANTIZERS
from hashrec.indexer.ranking_metrics import evaluate_rankings
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import (
    ExactSearcher,
    HammingSearcher,
    Searcher,
    two_stage_searcher,
)

sys.path.insert(0, str(Path(__file__).parent))
import common

PUBLISHED = {
    "gowalla": {"LightGCN (paper, L=3)": (0.1823, 0.1555), "LightGCN (paper, L=4)": (0.1830, 0.1550)}
}


def evaluate(searcher: Searcher | AsymmetricSearcher, test, k: int = 20) -> dict[str, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = evaluate_rankings(lambda users, kk: searcher.search_users(users, kk).items, test, ks=(k,))
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


class AsymmetricSearcher:
    """First stage with the query kept in float: ``(augment(u) @ W) . (s_i * b_i)``, with b_i the item's
    +-1 code and s_i = mean |augment(x_i) @ W| its one float32 scale (4 bytes more per item); then,
    with ``candidates``, an exact rerank of the top-C. Benchmark only: the service stays symmetric
    unless these numbers say otherwise."""

    def __init__(self, users, items, arrays, train, candidates: int = 0) -> None:  # type: ignore[no-untyped-def]
        from hashrec.retrieval.query_codes import mips_augment

        aug_users, aug_items = mips_augment(users, items)
        projection = arrays["code_projection"]
        signs = np.unpackbits(arrays["item_codes"], axis=1).astype(np.float32) * 2 - 1
        scale = np.abs(aug_items @ projection).mean(axis=1, keepdims=True)
        self.queries, self.keys = aug_users @ projection, signs * scale
        self.users, self.items, self.train, self.candidates = users, items, train, candidates

    def search_users(self, users: np.ndarray, k: int):  # type: ignore[no-untyped-def]
        scores = self.queries[users] @ self.keys.T
        rows, cols = self.train[users].nonzero()
        scores[rows, cols] = -np.inf
        depth = max(k, self.candidates)
        top = np.argpartition(-scores, depth, axis=1)[:, :depth]
        if self.candidates:  # exact rerank of the candidates
            scores = np.einsum("ud,ucd->uc", self.users[users], self.items[top])
        else:
            scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return _Ranked(np.take_along_axis(top, order, axis=1))


class _Ranked:
    def __init__(self, items: np.ndarray) -> None:
        self.items = items


def run(args: argparse.Namespace) -> dict[str, object]:
    data = load_interactions(args.data)
    rows = []
    for encoder in args.encoders:
        cfg = IndexConfig(
            encoder=EncoderConfig(
                name=encoder,
                epochs=args.epochs,
                dim=args.gfcf_dim if encoder == "gfcf" else args.dim,
                spectral_power=args.gfcf_power if encoder == "gfcf" else None,
                layers=args.layers,
            ),
            progress=False,
            seed=args.seed,
        )
        started = time.perf_counter()
        users, items, encoder_config = train_embeddings(data, cfg)
        train_seconds = time.perf_counter() - started
        full = None
        for quantizer_name, bits in [(q, b) for q in args.quantizers for b in args.bits]:
            quantizer = make_quantizer(
                replace(cfg, quantizer=QuantizerConfig(name=quantizer_name, bits=bits))
            )
            started = time.perf_counter()
            arrays = recommender_arrays(data, users, items, quantizer)
            code_seconds = time.perf_counter() - started
            model = ServingModel.from_arrays(f"{encoder}-{bits}", arrays)
            if full is None:
                full = evaluate(ExactSearcher(model), data.test)
            row = {
                "encoder": encoder,
                "quantizer": quantizer_name,
                "code_seconds": round(code_seconds, 1),
                "dim": int(users.shape[1]),
                "bits": bits,
                "train_seconds": round(train_seconds, 1),
                "epochs_run": len(cast("list[object]", encoder_config.get("history", []))),
                **({"encoder_search": encoder_config["history"]} if encoder == "gfcf" else {}),
                "full": full,
                "hamming": evaluate(HammingSearcher(model), data.test),
            }
            for candidates in args.candidates:
                row[f"served_c{candidates}"] = evaluate(
                    two_stage_searcher(model, candidates=candidates), data.test
                )
            if args.asymmetric:
                train = data.train.tocsr()
                row["asymmetric"] = evaluate(AsymmetricSearcher(users, items, arrays, train), data.test)
                for candidates in args.candidates:
                    row[f"asymmetric_c{candidates}"] = evaluate(
                        AsymmetricSearcher(users, items, arrays, train, candidates), data.test
                    )
            rows.append(row)
            logging.info("%s", json.dumps(row))
    return {
        "rows": rows,
        "machine": machine(),
        "data": str(args.data),
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "data")},
    }


def merge(runs: list[Path]) -> dict[str, object]:
    """One result from several runs on the same data (e.g. bit widths run separately)."""
    results = [json.loads((run / "results.json").read_text()) for run in runs]
    if len({r["data"] for r in results}) != 1:
        raise SystemExit("--merge: the runs are on different data")
    rows = [row for r in results for row in r["rows"]]
    rows.sort(key=lambda row: (row["encoder"], row.get("quantizer", "sign"), row["bits"]))
    merged = {**results[0], "rows": rows}
    sources = zip(runs, results, strict=True)
    merged["merged_from"] = [{"run": str(run), "machine": r["machine"]} for run, r in sources]
    return merged


def machine() -> dict[str, object]:
    return common.run_metadata()


def write_report(
    result: dict[str, Any], out: Path, candidates: list[int], plot_candidates: list[int] | None = None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    rows = result["rows"]
    m = result["machine"]
    head = (
        "| encoder | codes | dim | bits | bytes/item (codes + float32) | train s | codes s | "
        "full R@20 | full N@20 | "
        "Hamming R@20 | " + " | ".join(f"served C={c} R@20 | N@20" for c in candidates) + " |"
    )
    lines = [
        f"Data: `{result['data']}`. Machine: {m['cpus']} CPUs, Python {m['python']}, "
        f"{m['date']}, commit {m['commit']}.",
        *[
            f"Merged from `{src['run']}` ({src['machine']['date']}, commit {src['machine']['commit']})."
            for src in result.get("merged_from", [])
        ],
        "",
        head,
        "|" + "---|" * (10 + 2 * len(candidates)),
    ]
    for row in rows:
        cells = [
            row["encoder"],
            row.get("quantizer", "sign"),
            row["dim"],
            row["bits"],
            f"{row['bits'] // 8} + {4 * row['dim']}",
            row["train_seconds"],
            row.get("code_seconds", ""),
            row["full"]["recall@20"],
            row["full"]["ndcg@20"],
            row["hamming"]["recall@20"],
        ]
        for c in candidates:
            cells += [row[f"served_c{c}"]["recall@20"], row[f"served_c{c}"]["ndcg@20"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    asymmetric = [row for row in rows if "asymmetric" in row]
    if asymmetric:
        lines += [
            "",
            "First stage with a float query against scaled item codes (asymmetric), beside symmetric "
            "Hamming (R@20):",
            "",
            "| encoder | codes | bits | bytes/item of the first stage | Hamming only | asymmetric only | "
            + " | ".join(f"Hamming C={c} | asymmetric C={c}" for c in candidates)
            + " |",
            "|" + "---|" * (6 + 2 * len(candidates)),
        ]
        for row in asymmetric:
            cells = [row["encoder"], row["quantizer"], row["bits"], f"{row['bits'] // 8} (+4)"]
            cells += [row["hamming"]["recall@20"], row["asymmetric"]["recall@20"]]
            for c in candidates:
                cells += [row[f"served_c{c}"]["recall@20"], row[f"asymmetric_c{c}"]["recall@20"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / "served_recall.png", plot_candidates or candidates)  # type: ignore[arg-type]


def plot(rows: list[dict], path: Path, candidates: list[int]) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    groups = sorted({(r["encoder"], r.get("quantizer", "sign")) for r in rows})
    palette = [plt.get_cmap("tab10")(i) for i in range(10)]
    for group_index, (encoder, quantizer) in enumerate(groups):
        mine = [r for r in rows if r["encoder"] == encoder and r.get("quantizer", "sign") == quantizer]
        mine.sort(key=lambda r: r["bits"])
        bits = [r["bits"] for r in mine]
        color = palette[group_index % len(palette)]
        ax.axhline(mine[0]["full"]["recall@20"], linestyle="--", linewidth=1, color=color)
        ax.plot(
            bits,
            [r["hamming"]["recall@20"] for r in mine],
            ":",
            color=color,
            marker="x",
            label=f"{encoder}/{quantizer} Hamming only",
        )
        for c, style in zip(candidates, ["-o", "-s", "-^"], strict=False):
            ax.plot(
                bits,
                [r[f"served_c{c}"]["recall@20"] for r in mine],
                style,
                color=color,
                label=f"{encoder}/{quantizer} served C={c}",
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("code bits")
    ax.set_ylabel("Recall@20")
    ax.set_title("Served ranking vs full precision (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="Dataset (required unless --merge or --replot).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/foundation"))
    parser.add_argument("--encoders", nargs="+", default=["mf", "lightgcn", "gfcf"])
    parser.add_argument("--bits", nargs="+", type=int, default=[64, 128, 256])
    parser.add_argument("--candidates", nargs="+", type=int, default=[100, 200])
    parser.add_argument("--quantizers", nargs="+", default=["sign"], choices=list(QUANTIZERS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--gfcf-dim", type=int, default=0, help="0: rank chosen on a holdout.")
    parser.add_argument(
        "--gfcf-power", type=float, default=None, help="Spectral weight exponent (default: holdout)."
    )
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--asymmetric", action="store_true", help="Also a float-query first stage against the item codes."
    )
    parser.add_argument("--replot", action="store_true", help="Redraw from --out/results.json; no runs.")
    parser.add_argument(
        "--merge", nargs="+", type=Path, default=[], help="No runs: join these runs' results.json into --out."
    )
    parser.add_argument("--plot-candidates", nargs="+", type=int, help="C values drawn (default: all).")
    args = parser.parse_args()
    if args.merge:
        write_report(merge(args.merge), args.out, args.candidates, args.plot_candidates)
        return
    if args.replot:
        result = json.loads((args.out / "results.json").read_text())
        write_report(result, args.out, args.candidates, args.plot_candidates)
        return
    if args.data is None:
        parser.error("--data is required to run")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    np.random.seed(args.seed)
    result = run(args)
    write_report(result, args.out, args.candidates)


if __name__ == "__main__":
    main()
