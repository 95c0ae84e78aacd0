"""The memory / quality frontier of what ``hashrec index`` publishes: bytes per item and per user
of the served version against its served Recall@20, per encoder.

Every point is a real ``hashrec index`` run (``indexer.pipeline.build_index``, 128 bits, C = 200)
published into a scratch store; its bytes are the version's files on disk, split into what
grows with the catalogue (item files), with the users (user files) and with the interactions.
Published LightGCN (64 float32 dims, 256 B an item and a user) is drawn as a point.

    flock /tmp/hashrec-heavy.lock python benchmarks/compact.py --data ../shared/datasets/gowalla \\
        --out benchmarks/results/compact-gowalla --runs walk gfcf
    python benchmarks/compact.py --report-only --out benchmarks/results/compact-gowalla

Records go to ``results.json`` (a rerun skips the runs it has), then ``compact.md`` and
``frontier.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import common  # noqa: E402

#: run name -> EncoderConfig keyword arguments
RUNS: dict[str, dict[str, Any]] = {
    "walk": {"name": "walk"},
    "gfcf": {"name": "gfcf"},  # the default: rank and power chosen on a holdout
    "gfcf-128": {"name": "gfcf", "dim": 128},
    "gfcf-64": {"name": "gfcf", "dim": 64},
}
USER_FILES = ("user_ids", "user_embeddings", "user_codes", "seen_indptr")
GRAPH_FILES = ("seen_indices", "item_users_indices")
#: Published LightGCN on Gowalla (He et al. 2020): 64 float32 dims on each side.
PUBLISHED: dict[str, dict[str, Any]] = {
    "gowalla": {"name": "LightGCN (published, 64 float32)", "item_bytes": 256, "recall": 0.1830}
}


def run(data_dir: Path, name: str) -> dict[str, Any]:
    """Index ``data_dir`` with run ``name`` into a scratch store; its metrics and bytes."""
    from hashrec.indexer.config import EncoderConfig, IndexConfig
    from hashrec.indexer.data import load_interactions
    from hashrec.indexer.pipeline import build_index
    from hashrec.model_store import ModelStore

    data = load_interactions(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp) / "store")
        started = time.perf_counter()
        result = build_index(data, store, IndexConfig(encoder=EncoderConfig(**RUNS[name]), progress=False))
        seconds = time.perf_counter() - started
        artifact = store.open(str(result["version"]))
        files = {f: artifact.file_path(f).stat().st_size for f in artifact.manifest.files}
        encoder_record = artifact.manifest.config.get("encoder_config")
        stages = encoder_record.get("seconds") if isinstance(encoder_record, dict) else None
    by_role = {"user": 0, "graph": 0, "item": 0}
    for file, size in files.items():
        stem = file.split(".")[0]
        role = "user" if stem in USER_FILES else "graph" if stem in GRAPH_FILES else "item"
        by_role[role] += size
    metrics = result["metrics"]
    return {
        "run": name,
        "users": data.n_users,
        "items": data.n_items,
        "interactions": int(data.train.nnz),
        "total_bytes": sum(files.values()),
        "item_bytes": by_role["item"] / data.n_items,
        "user_bytes": by_role["user"] / data.n_users,
        "graph_bytes": by_role["graph"],
        "files": files,
        "served": metrics["served"],  # type: ignore[index]
        "full": metrics["full"],  # type: ignore[index]
        "index_seconds": round(seconds, 1),
        "stage_seconds": stages,  # the encoder's own record of its stages, where it keeps one
        "meta": common.run_metadata(),
    }


def report(out: Path, records: list[dict[str, Any]], dataset: str) -> None:
    """compact.md and frontier.png from the records."""
    lines = [
        "| run | version MiB | B / item | B / user | graph MiB | served R@20 / N@20 | full R@20 | index s "
        "| commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        served, mib = r["served"], 2**20
        lines.append(
            f"| {r['run']} | {r['total_bytes'] / mib:.1f} | {r['item_bytes']:,.0f} | "
            f"{r['user_bytes']:,.0f} | "
            f"{r['graph_bytes'] / mib:.1f} | {served['recall@20']:.4f} / {served['ndcg@20']:.4f} | "
            f"{r['full']['recall@20']:.4f} | {r['index_seconds']:.0f} | {r['meta']['commit']} |"
        )
    meta = records[0]["meta"] if records else {}
    lines += [
        "",
        f"Machine: {meta.get('cpus', '?')} x {meta.get('cpu', '?')}; first run {meta.get('date', '?')}.",
    ]
    (out / "compact.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in records:
        ax.scatter(r["item_bytes"], r["served"]["recall@20"])
        ax.annotate(r["run"], (r["item_bytes"], r["served"]["recall@20"]))
    point = PUBLISHED.get(dataset)
    if point:
        ax.scatter(point["item_bytes"], point["recall"], marker="x", color="black")
        ax.annotate(point["name"], (point["item_bytes"], point["recall"]))
    ax.set_xscale("log")
    ax.set_xlabel("bytes per item of the published version (codes + rerank data)")
    ax.set_ylabel("served Recall@20 (128 bits, C = 200)")
    ax.set_title(f"{dataset}: memory against quality")
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=["walk", "gfcf"])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--rerun", action="store_true", help="measure --runs again, replacing their records")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    if not args.report_only:
        if args.data is None:
            parser.error("--data is required unless --report-only")
        for name in args.runs:
            if any(r["run"] == name for r in records):
                if not args.rerun:
                    continue
                records = [r for r in records if r["run"] != name]
            records.append(run(args.data, name))
            path.write_text(json.dumps(records, indent=1) + "\n")
    dataset = args.data.name if args.data else args.out.name.removeprefix("compact-")
    report(args.out, records, dataset)


if __name__ == "__main__":
    main()
