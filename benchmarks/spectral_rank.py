"""The closed-form encoder's rank and spectral power against full-precision quality on the test split.

One randomized SVD at the largest rank; smaller ranks are its leading components (as the
encoder's own holdout search does). For each (rank, p): Recall@20 and NDCG@20 of the exact
inner-product ranking over all items (training items excluded) and the bytes an item's float32
rerank vector takes. Writes results.json, results.md and rank_power.png under --out.

    flock /tmp/hashrec-heavy.lock python benchmarks/spectral_rank.py --data ../shared/datasets/gowalla
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
import numpy as np
from hashrec.indexer.data import load_interactions
from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig
from hashrec.indexer.ranking_metrics import evaluate_rankings
from hashrec.retrieval.topk import top_k


def exact_metrics(users: np.ndarray, items: np.ndarray, train, test) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Recall/NDCG@20 of the exact inner-product ranking, training items excluded."""

    def rank(batch: np.ndarray, k: int) -> np.ndarray:
        scores = users[batch] @ items.T
        rows, cols = train[batch].nonzero()
        scores[rows, cols] = -np.inf
        return top_k(scores, k)[0]

    return evaluate_rankings(rank, test, ks=(20,), batch_size=2048)


def run(args: argparse.Namespace) -> dict[str, object]:
    data = load_interactions(args.data)
    train, test = data.train.tocsr(), data.test.tocsr()
    encoder = ClosedForm(ClosedFormConfig(seed=args.seed))
    started = time.perf_counter()
    singular, basis = encoder.spectrum(train, max(args.ranks))
    svd_seconds = time.perf_counter() - started
    rows = []
    for rank, power, users, items in encoder.variants(train, singular, basis, args.ranks, args.powers):
        metrics = exact_metrics(users, items, train, test)
        row = {"rank": rank, "power": power, "bytes_per_item": 4 * rank, **metrics}
        logging.info(json.dumps(row))
        rows.append(row)
    return {
        "data": str(args.data),
        "svd_seconds": round(svd_seconds, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": common.git_commit(),
        },
        "rows": rows,
    }


def write_report(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    m = result["machine"]
    lines = [
        f"Data `{result['data']}`; randomized SVD at the largest rank {result['svd_seconds']} s; "
        f"{m['cpus']} CPUs, Python {m['python']}, {m['date']}, commit {m['commit']}.",
        "",
        "| rank | p | bytes/item (float32 vector) | full R@20 | full N@20 |",
        "|---|---|---|---|---|",
    ]
    rows = result["rows"]
    for row in rows:
        lines.append(
            f"| {row['rank']} | {row['power']:g} | {row['bytes_per_item']:,} | "
            f"{row['recall@20']:.4f} | {row['ndcg@20']:.4f} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for power in sorted({row["power"] for row in rows}):
        mine = [row for row in rows if row["power"] == power]
        ax.plot([r["rank"] for r in mine], [r["recall@20"] for r in mine], marker="o", label=f"p = {power:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rank (float32 vector length)")
    ax.set_ylabel("Recall@20, full precision")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rank_power.png", dpi=110)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/spectral_rank"))
    parser.add_argument("--ranks", type=int, nargs="+", default=[128, 256, 512, 1024, 1536])
    parser.add_argument("--powers", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    write_report(run(args), args.out)


if __name__ == "__main__":
    main()
