"""Compressed embedding tables: method x budget on Gowalla and MovieLens-1M (MF-BPR, dim 64).

For every (dataset, method, budget) the script fits the id -> row mapping on the training matrix,
trains MF-BPR (or LightGCN with ``--encoder lightgcn``) for a fixed number of epochs (no early
stopping, so every method gets the same training budget), and evaluates the full-precision
ranking on the test split (Recall@20 / NDCG@20, training items excluded, LightGCN protocol). The
best compressed model of each dataset is also quantized and evaluated through the service's
two-stage search (Hamming top-C + exact rerank) with ``indexer.evaluation.evaluate_model``.

Results go to a JSON file (one record per run, reused on a rerun so an interrupted benchmark
resumes), then to a markdown table and a PNG plot of Recall@20 against table size.

    flock /tmp/hashrec-heavy.lock python benchmarks/compression.py            # everything
    python benchmarks/compression.py --report-only                            # tables and plot
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import common  # noqa: E402
from hashrec.indexer.compression import METHODS  # noqa: E402
from hashrec.indexer.ranking_metrics import recall_ndcg  # noqa: E402

DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (sub-directory, load_interactions keyword arguments)
    "gowalla": ("gowalla", {}),
    "ml-1m": ("ml-1m", {"split": "random", "seed": 0, "test_fraction": 0.2}),
    "ml-100k": ("ml-100k", {"split": "random", "seed": 0, "test_fraction": 0.2}),  # smoke runs only
}
HASHING = ("hash", "double", "frequency", "double-frequency", "qr")
ALL_BUDGETS = (0.5, 0.25, 0.1, 0.05)
NOTES_MARKER = "<!-- notes: kept when the tables above are regenerated -->"


def exact_metrics(
    users: np.ndarray, items: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 20
) -> dict[str, float]:
    """Recall@k / NDCG@k of the exact inner-product ranking, training items excluded."""
    rows = np.flatnonzero(np.diff(test.indptr) > 0)
    train = sp.csr_matrix(train)
    ranked_all = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), 2048):
        batch = rows[start : start + 2048]
        scores = users[batch] @ items.T
        sub = train[batch]
        scores[np.repeat(np.arange(len(batch)), np.diff(sub.indptr)), sub.indices] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        ranked_all[start : start + len(batch)] = np.take_along_axis(top, order, axis=1)
    out = recall_ndcg(ranked_all, test, rows, k)
    return {f"recall@{k}": round(out[f"recall@{k}"], 5), f"ndcg@{k}": round(out[f"ndcg@{k}"], 5)}


def popularity_metrics(train: sp.csr_matrix, test: sp.csr_matrix) -> dict[str, float]:
    popularity = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
    # A tiny deterministic jitter keeps ties from depending on argpartition's order.
    items = (popularity + np.linspace(0, 1e-3, len(popularity), dtype=np.float32))[:, None]
    return exact_metrics(np.ones((train.shape[0], 1), np.float32), items, train, test)


def run_one(data: Any, method: str, budget: float, args: argparse.Namespace) -> dict[str, Any]:
    """Map, train and evaluate one configuration; returns a JSON-ready record."""
    from hashrec.indexer.encoders.models import make_encoder

    params: dict[str, Any] = {
        "dim": args.dim,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "reg": args.reg,
        "seed": args.seed,
        "progress": False,
        "compression": method,
        "budget": budget,
    }
    if args.encoder == "lightgcn":
        params["layers"] = args.layers
    encoder = make_encoder(args.encoder, **params)
    started = time.perf_counter()
    embeddings = encoder.fit(data.train)
    seconds = time.perf_counter() - started
    table: dict[str, Any] = dict(encoder.table)
    mapping_seconds = float(table.get("mapping_seconds", 0.0))
    metrics = exact_metrics(embeddings.users, embeddings.items, data.train, data.test)
    record = {
        "method": method,
        "budget": budget,
        "encoder": args.encoder,
        "epochs": args.epochs,
        "lr": args.lr,
        "reg": args.reg,
        "batch_size": args.batch_size,
        **metrics,
        "rows": table["rows"],
        "fraction": table["fraction"],
        "parameters": table["parameters"],
        "bytes": table["parameters"] * 4,
        "mapping_seconds": round(mapping_seconds, 2),
        "train_seconds": round(seconds - mapping_seconds, 1),
        "table": {k: v for k, v in table.items() if k not in ("seed",)},
    }
    if args.served:
        record["_embeddings"] = embeddings
    return record


def served_metrics(data: Any, embeddings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The service's rankings (full, Hamming, Hamming top-C + rerank) of trained embeddings."""
    from hashrec.indexer.evaluation import evaluate_model
    from hashrec.indexer.pipeline import recommender_arrays
    from hashrec.indexer.quantizers import SignQuantizer
    from hashrec.retrieval.model import ServingModel

    quantizer = SignQuantizer(bits=args.bits, transform="mips", seed=args.seed)
    arrays = recommender_arrays(data, embeddings.users, embeddings.items, quantizer)
    model = ServingModel.from_arrays("benchmark", arrays)
    result = evaluate_model(model, data.test, candidates=args.candidates, ks=(20,))
    code_bytes = (data.n_users + data.n_items) * args.bits // 8
    return {**result, "code_bytes": code_bytes}


def key(dataset: str, method: str, budget: float, encoder: str) -> str:
    return f"{dataset}|{encoder}|{method}|{budget:g}"


def machine() -> str:
    return f"{common.cpu_description()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def grid(dataset: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    """(method, budget) pairs to run for a dataset, full table first."""
    pairs: list[tuple[str, float]] = [("full", 1.0)]
    if args.pairs:
        for pair in args.pairs:
            method, budget = pair.split(":")
            pairs.append((method, float(budget)))
        return pairs
    methods = [m for m in args.methods if m != "full"]
    budgets = args.budgets
    reduced = args.grid == "reduced"
    for budget in budgets:
        for method in methods:
            if reduced and budget not in (0.25, 0.05) and method not in args.every_budget:
                continue
            pairs.append((method, budget))
    return pairs


def run(args: argparse.Namespace) -> None:
    from hashrec.indexer.data import load_interactions

    invocation_started = time.perf_counter()
    results_path = Path(args.json)
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("runs", {})
    results.setdefault("datasets", {})
    results.setdefault("served", {})
    for dataset in args.datasets:
        sub, options = DATASETS[dataset]
        started = time.perf_counter()
        data = load_interactions(Path(args.data) / sub, **options)
        results["datasets"][dataset] = {
            "users": data.n_users,
            "items": data.n_items,
            "train": int(data.train.nnz),
            "test": int(data.test.nnz),
            "split": data.split,
            "options": options,
            "popularity": popularity_metrics(data.train, data.test),
        }
        print(f"{dataset}: loaded in {time.perf_counter() - started:.1f}s", flush=True)
        best: tuple[float, str, Any] | None = None
        full_embeddings = None
        for method, budget in grid(dataset, args):
            k = key(dataset, method, budget, args.encoder)
            done = results["runs"].get(k)
            if done is not None and not args.rerun and not (args.served and method == "full"):
                print(f"  {k}: kept {done['recall@20']}", flush=True)
                if method != "full" and (best is None or done["recall@20"] > best[0]):
                    best = (done["recall@20"], k, None)
                continue
            record = run_one(data, method, budget, args)
            embeddings = record.pop("_embeddings", None)
            results["runs"][k] = {"dataset": dataset, **record}
            print(
                f"  {k}: R@20 {record['recall@20']:.4f} N@20 {record['ndcg@20']:.4f} rows {record['rows']} "
                f"map {record['mapping_seconds']}s train {record['train_seconds']}s",
                flush=True,
            )
            if method == "full":
                full_embeddings = embeddings
            elif best is None or record["recall@20"] > best[0]:
                best = (record["recall@20"], k, embeddings)
            results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        if args.served and best is not None:
            _, best_key, embeddings = best
            if embeddings is None:  # kept from an earlier run: train it again
                prev = results["runs"][best_key]
                embeddings = run_one(data, prev["method"], prev["budget"], args)["_embeddings"]
            served: dict[str, Any] = {"best": served_metrics(data, embeddings, args)}
            if full_embeddings is not None:
                served["full"] = served_metrics(data, full_embeddings, args)
            served["best_key"] = best_key
            results["served"][f"{dataset}|{args.encoder}"] = served
            print(f"  served: {json.dumps(served)}", flush=True)
        results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    invocation = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": common.git_commit("indexer", "benchmarks/compression.py"),
        "command": " ".join(["python benchmarks/compression.py", *sys.argv[1:]]),
        "wall_seconds": round(time.perf_counter() - invocation_started),
        "settings": {
            key_: getattr(args, key_)
            for key_ in ("encoder", "dim", "epochs", "batch_size", "lr", "reg", "seed", "bits", "candidates")
        },
    }
    invocation["runs"] = f"{', '.join(args.datasets)}; {args.encoder}" + (
        f"; {' '.join(args.pairs)}" if args.pairs else ""
    )
    results.setdefault("invocations", {})[invocation["command"]] = invocation
    results_path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def report(args: argparse.Namespace) -> None:
    """Markdown table and PNG plot from the JSON results."""
    results = json.loads(Path(args.json).read_text())
    runs = results["runs"]
    lines = [
        "# Compressed embedding tables",
        "",
        "Tables generated by `benchmarks/compression.py` from `benchmarks/compression.json` "
        "(`--report-only` redraws them); notes at the end.",
        "",
        "| runs | command | machine | date | commit | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for inv in results.get("invocations", {}).values():
        lines.append(
            f"| {inv['runs']} | `flock /tmp/hashrec-heavy.lock {inv['command']}` "
            f"| {inv['machine']} | {inv['date']} | {inv['commit']} | {inv['wall_seconds'] / 60:.1f} min |"
        )
    lines.append("")
    for dataset, info in results["datasets"].items():
        rows = [r for r in runs.values() if r["dataset"] == dataset]
        if not rows:
            continue
        fulls = {r["encoder"]: r for r in rows if r["method"] == "full"}
        lines += [
            f"## {dataset}",
            "",
            f"{info['users']:,} users, {info['items']:,} items, {info['train']:,} train / "
            f"{info['test']:,} test interactions ({info['split']} split). "
            f"Popularity: Recall@20 {info['popularity']['recall@20']:.4f}.",
            "",
            "| encoder | method | budget | rows | parameters | bytes (fp32) | Recall@20 | NDCG@20 "
            "| % of full R@20 | mapping s | training s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        order = {m: i for i, m in enumerate(METHODS)}
        rows.sort(key=lambda r: (r["encoder"], -r["budget"], order.get(r["method"], 99)))
        for r in rows:
            full = fulls.get(r["encoder"])
            pct = f"{100 * r['recall@20'] / full['recall@20']:.1f}%" if full else "-"
            encoder = f"{r['encoder']} ({r['epochs']} ep.)"
            lines.append(
                f"| {encoder} | {r['method']} | {r['budget']:g} "
                f"| {r['rows']:,} ({100 * r['fraction']:.1f}%) "
                f"| {r['parameters']:,} | {_bytes(r['bytes'])} | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} "
                f"| {pct} | {r['mapping_seconds']:.1f} | {r['train_seconds']:.1f} |"
            )
        lines.append("")
        for encoder in sorted(fulls):
            lines += _best_lines([r for r in rows if r["encoder"] == encoder], fulls[encoder], encoder)
        for served_key, served in results.get("served", {}).items():
            if served_key.split("|")[0] != dataset:
                continue
            lines += ["", f"Served ranking ({served_key.split('|')[1]}, service search code):", ""]
            lines += [
                "| model | tables | codes | exact R@20 | Hamming R@20 | served R@20 (C = "
                f"{served['best']['candidates']}) | served NDCG@20 |",
                "|---|---|---|---|---|---|---|",
            ]
            for name in ("full", "best"):
                if name not in served:
                    continue
                s = served[name]
                run = runs[served["best_key"]] if name == "best" else fulls.get(served_key.split("|")[1])
                label = f"{run['method']} @ {run['budget']:g}" if run else name
                lines.append(
                    f"| {label} | {_bytes(run['bytes']) if run else '-'} "
                    f"| {_bytes(s['code_bytes'])} ({s['bits']} bits) "
                    f"| {s['full']['recall@20']:.4f} | {s['hamming']['recall@20']:.4f} "
                    f"| {s['served']['recall@20']:.4f} | {s['served']['ndcg@20']:.4f} |"
                )
        lines.append("")
    # Hand-written notes below the marker survive regeneration.
    markdown = Path(args.markdown)
    old = markdown.read_text() if markdown.exists() else ""
    notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else NOTES_MARKER + "\n"
    markdown.write_text("\n".join(lines) + "\n" + notes)
    plot(results, Path(args.png))
    print(f"wrote {args.markdown} and {args.png}")


def _best_lines(rows: list[dict[str, Any]], full: dict[str, Any] | None, encoder: str) -> list[str]:
    out = []
    budgets = sorted({r["budget"] for r in rows if r["method"] != "full"}, reverse=True)
    for budget in budgets:
        at = [r for r in rows if r["budget"] == budget and r["method"] != "full"]
        best = max(at, key=lambda r: r["recall@20"])
        hashing = [r for r in at if r["method"] in HASHING]
        line = f"- {encoder}, budget {budget:g}: best {best['method']} {best['recall@20']:.4f}"
        if full:
            line += f" ({100 * best['recall@20'] / full['recall@20']:.1f}% of full)"
        if hashing:
            best_hash = max(hashing, key=lambda r: r["recall@20"])
            line += (
                f"; best ID hashing {best_hash['method']} {best_hash['recall@20']:.4f} "
                f"(x{best['recall@20'] / max(best_hash['recall@20'], 1e-9):.2f})"
            )
        out.append(line)
    return out


def _bytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in results["datasets"] if any(r["dataset"] == d for r in results["runs"].values())]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        every = [r for r in results["runs"].values() if r["dataset"] == dataset]
        rows = [r for r in every if r["encoder"] == "mf"]
        full = next((r for r in rows if r["method"] == "full"), None)
        other = sorted({r["encoder"] for r in every} - {"mf"})
        for method in METHODS:
            if method == "full":
                continue
            pts = sorted((r["fraction"], r["recall@20"]) for r in rows if r["method"] == method)
            if pts:
                style = "-o" if method not in HASHING else "--s"
                ax.plot([100 * p[0] for p in pts], [p[1] for p in pts], style, label=method, markersize=4)
        for encoder in other:
            runs_e = [r for r in every if r["encoder"] == encoder]
            for method in METHODS:
                pts = sorted((r["fraction"], r["recall@20"]) for r in runs_e if r["method"] == method)
                if pts and method != "full":
                    ax.plot(
                        [100 * p[0] for p in pts],
                        [p[1] for p in pts],
                        ":*",
                        markersize=9,
                        label=f"{method} ({encoder})",
                    )
            full_e = next((r for r in runs_e if r["method"] == "full"), None)
            if full_e:
                ax.axhline(
                    full_e["recall@20"],
                    color="tab:purple",
                    linewidth=1,
                    linestyle="--",
                    label=f"full table ({encoder})",
                )
        if full:
            ax.axhline(full["recall@20"], color="black", linewidth=1, label="full table (mf)")
            ax.axhline(
                0.9 * full["recall@20"], color="black", linewidth=0.8, linestyle=":", label="90% of full (mf)"
            )
        pop = results["datasets"][dataset]["popularity"]["recall@20"]
        ax.axhline(pop, color="grey", linewidth=0.8, linestyle="-.", label="popularity")
        ax.set_xscale("log")
        ax.set_xticks([5, 10, 25, 50], labels=["5", "10", "25", "50"])
        ax.set_xlabel("table rows, % of the full table (log scale)")
        ax.set_ylabel("Recall@20")
        ax.set_title(f"{dataset}, dim 64 (lines: MF-BPR)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets"), help="datasets root")
    parser.add_argument("--datasets", nargs="+", default=["gowalla", "ml-1m"], choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--budgets", nargs="+", type=float, default=list(ALL_BUDGETS))
    parser.add_argument(
        "--grid",
        choices=("all", "reduced"),
        default="reduced",
        help="reduced: budgets other than 0.25 and 0.05 only for the --every-budget methods",
    )
    parser.add_argument(
        "--every-budget",
        nargs="+",
        default=["hash", "double-frequency", "graphhash", "graphhash-plus", "learned"],
        help="methods run at every budget under --grid reduced",
    )
    parser.add_argument("--pairs", nargs="+", help="METHOD:BUDGET pairs to run instead of the grid")
    parser.add_argument("--encoder", default="mf", choices=("mf", "lightgcn"))
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--reg", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bits", type=int, default=128, help="code length of the served ranking")
    parser.add_argument("--candidates", type=int, default=200, help="C of the served ranking")
    parser.add_argument("--served", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--rerun", action="store_true", help="retrain runs already in the JSON")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--json", default=str(here / "compression.json"))
    parser.add_argument("--markdown", default=str(here / "compression.md"))
    parser.add_argument("--png", default=str(here / "compression.png"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.report_only:
        run(args)
    report(args)


if __name__ == "__main__":
    main()
