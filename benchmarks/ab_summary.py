"""Summarize alternated A/B runs of ``serving_http.py`` and ``asgi_overhead.py``: one table, A beside B.

Each side is a glob of result directories (each holding a ``results.json``); HTTP runs and
in-process runs are told apart by their contents. Prints ranges (min-max) and means, and writes
them to ``<out>/summary.md`` and ``<out>/summary.json``.

    python benchmarks/ab_summary.py --out benchmarks/results/serving_http_user_kernel \\
        --side before='benchmarks/results/serving_http_user_kernel/before-*' \\
        --side after='benchmarks/results/serving_http_user_kernel/after-*' \\
        --asgi before='benchmarks/results/serving_http_user_kernel/asgi-before-*' \\
        --asgi after='benchmarks/results/serving_http_user_kernel/asgi-after-*'
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
from pathlib import Path
from typing import Any


def load(pattern: str) -> list[dict[str, Any]]:
    """The results.json of every directory matching pattern, in name order."""
    paths = sorted(
        Path(p) / "results.json" for p in glob.glob(pattern) if (Path(p) / "results.json").is_file()
    )
    if not paths:
        raise SystemExit(f"no results.json under {pattern!r}")
    return [json.loads(p.read_text()) for p in paths]


def spread(values: list[float], digits: int = 0, mean: bool = True) -> str:
    """'min-max, mean m' (or just 'min-max') with thousands separators."""
    fmt = f"{{:,.{digits}f}}"
    text = f"{fmt.format(min(values))}-{fmt.format(max(values))}"
    return f"{text}, mean {fmt.format(statistics.mean(values))}" if mean else text


def http_rows(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-run figures of serving_http.py results."""
    res = [r["results"] for r in runs]
    return {
        "trivial req/s": [r[case]["trivial"]["peak"]["rps"] for r in res for case in ("miss", "hit")],
        "misses/s": [r["miss"]["recommend"]["peak"]["rps"] for r in res],
        "miss ratio": [r["miss"]["ratio"] for r in res],
        "hits/s": [r["hit"]["recommend"]["peak"]["rps"] for r in res],
        "hit ratio": [r["hit"]["ratio"] for r in res],
        "miss p50 at half peak, ms": [r["miss"]["recommend"]["half_peak"]["p50_ms"] for r in res],
        "miss p99 at half peak, ms": [r["miss"]["recommend"]["half_peak"]["p99_ms"] for r in res],
        "hit p50 at half peak, ms": [r["hit"]["recommend"]["half_peak"]["p50_ms"] for r in res],
        "hit p99 at half peak, ms": [r["hit"]["recommend"]["half_peak"]["p99_ms"] for r in res],
    }


def asgi_rows(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-run figures of asgi_overhead.py results."""
    return {
        "in-process trivial, us": [r["us"]["trivial_cache_off"] for r in runs],
        "in-process hit, us": [r["us"]["recommend_hit"] for r in runs],
        "in-process miss, us": [r["us"]["recommend_miss"] for r in runs],
        "in-process miss ratio": [r["ratios"]["miss"] for r in runs],
        # visitors (history) since 2026-12-03; older runs have none
        "in-process visitor miss, us": [
            r["us"]["recommend_visitor_miss"] for r in runs if "recommend_visitor_miss" in r["us"]
        ],
        "in-process visitor miss ratio": [
            r["ratios"]["visitor_miss"] for r in runs if "visitor_miss" in r["ratios"]
        ],
    }


DIGITS = {"ratio": 2, "ms": 2, "us": 0, "req/s": 0, "/s": 0}


def digits(name: str) -> int:
    return next((d for key, d in DIGITS.items() if key in name), 0)


def parse_sides(items: list[str]) -> dict[str, str]:
    sides = {}
    for item in items:
        label, sep, pattern = item.partition("=")
        if not sep or not label or not pattern:
            raise SystemExit(f"expected LABEL=GLOB, got {item!r}")
        sides[label] = pattern
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", action="append", default=[], help="LABEL=GLOB of serving_http.py results")
    parser.add_argument("--asgi", action="append", default=[], help="LABEL=GLOB of asgi_overhead.py results")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    http, asgi = parse_sides(args.side), parse_sides(args.asgi)
    labels = list(dict.fromkeys([*http, *asgi]))
    table: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
    meta: dict[str, list[str]] = {label: [] for label in labels}
    for label, pattern in http.items():
        runs = load(pattern)
        table[label].update(http_rows(runs))
        meta[label] += sorted({f"{r['meta']['commit']} ({r['meta'].get('cpu', '?')})" for r in runs})
        table[label]["runs"] = [float(len(runs))]
    for label, pattern in asgi.items():
        runs = load(pattern)
        table[label].update(asgi_rows(runs))
        meta[label] += sorted({f"{r['meta']['commit']} (in-process)" for r in runs})
    names = list(dict.fromkeys(name for label in labels for name in table[label] if table[label][name]))
    lines = ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines.append("| commits | " + " | ".join(", ".join(sorted(set(meta[lb]))) for lb in labels) + " |")
    for name in names:
        cells = []
        for label in labels:
            values = table[label].get(name)
            if not values:
                cells.append("")
            elif name == "runs":
                cells.append(str(int(values[0])))
            else:
                cells.append(spread(values, digits(name), mean="p50" not in name and "p99" not in name))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "summary.json").write_text(json.dumps({"sides": {**http, **asgi}, "values": table}, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
