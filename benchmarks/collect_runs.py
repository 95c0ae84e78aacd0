"""Combine repeated benchmark runs (A/B comparisons) into one ``results.json``, ``results.md`` and PNG.

A comparison is a directory of run directories, each the ``--out`` of one benchmark run (its
``results.json``, ``results.md`` and PNGs), named ``<side>-<n>`` or ``<side><n>`` (``before-1``,
``after-2``, ``run3``; nesting allowed: ``1-kernel/vbefore-2``). This script writes, in the
comparison directory:

* ``results.json``: every run's ``results.json`` unchanged under ``runs``, its ``results.md`` text
  under ``runs_md``, the runs of each side under ``groups``, each side's median of every number
  under ``medians``, and any ``summary.json``/``summary.md`` of ``benchmarks/ab_summary.py`` under
  ``ab_summary``;
* ``results.md``: one table of medians per kind of run (serving_http.py, asgi_overhead.py, ...), side
  beside side, then the ab_summary tables and every run's own table;
* one PNG per plot name: the first run of each side's plot, stacked, each under its run's name.

Run it on the run directories of a new comparison, then delete them (``--remove``), for example::

    python benchmarks/collect_runs.py benchmarks/runs/serving_http_ab --remove

A side is the run name without its trailing number; ``--each`` makes every run its own side (runs
of different settings). Run again on a combined directory (no run directories left) it only
rewrites ``results.md`` from ``results.json``. ``--unpack DEST`` writes the run directories back
(``results.json`` and ``results.md`` of every run), e.g. for ``ab_summary.py``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

COMBINED_BY = "benchmarks/collect_runs.py"
#: Top-level keys that describe a run rather than measure it.
DESCRIPTIVE = ("meta", "config")
#: A key found at the top of a run's results.json -> the benchmark that writes it.
KINDS = {
    "results": "serving_http.py",
    "us": "asgi_overhead.py",
    "dram_gb_s": "hamming_scan.py",
    "rows": "serving_workers.py",
}
_TRAILING_NUMBER = re.compile(r"(?:-run)?-?\d+$")


def natural_key(name: str) -> list[Any]:
    """'before-10' after 'before-9'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_runs(root: Path) -> list[str]:
    """Relative names of the directories under root (root excluded) that hold a results.json."""
    names = [p.parent.relative_to(root).as_posix() for p in root.rglob("results.json") if p.parent != root]
    return sorted(names, key=natural_key)


def side_of(name: str, each: bool) -> str:
    """'before-3' -> 'before', '1-kernel/vafter-2' -> '1-kernel/vafter', 'run2' -> 'run', 'mb0-run1' -> 'mb0'.

    Sides are ordered by the date of their first run (order_sides), so 'before' comes ahead of 'after'.
    """
    if each:
        return name
    head, _, last = name.rpartition("/")
    stripped = _TRAILING_NUMBER.sub("", last) or last
    return f"{head}/{stripped}" if head else stripped


def _identity(element: dict[str, Any]) -> list[str]:
    """The keys of a row: its leading non-float scalars (e.g. n_items and bits, before the timings)."""
    keys = []
    for key, value in element.items():
        if isinstance(value, float | dict | list):
            break
        keys.append(key)
    return keys


def flatten(value: Any, prefix: str = "") -> dict[str, float]:
    """Every number under value by dotted path; list rows keyed by their leading fields."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return {}
    if isinstance(value, int | float):
        return {prefix: value}
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        keys = [_identity(e) if isinstance(e, dict) else [] for e in value]
        labels = [",".join(f"{k}={e[k]}" for k in ks) for e, ks in zip(value, keys, strict=True)]
        unique = all(labels) and len(set(labels)) == len(labels)
        for index, item in enumerate(value):
            if unique:
                item = {k: v for k, v in item.items() if k not in keys[index]}
            out.update(flatten(item, f"{prefix}[{labels[index] if unique else index}]"))
    return out


def kind_of(run: dict[str, Any]) -> str:
    keys = [k for k in run if k not in DESCRIPTIVE]
    for key, kind in KINDS.items():
        if key in keys:
            return kind
    return "+".join(keys) or "empty"


def measures(run: dict[str, Any]) -> dict[str, float]:
    return flatten({k: v for k, v in run.items() if k not in DESCRIPTIVE})


def order_sides(runs: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> list[str]:
    """Sides by the date of their first run (before ahead of after), then by name."""

    def first_date(side: str) -> str:
        return min(str(runs[n].get("meta", {}).get("date", "")) for n in groups[side])

    return sorted(groups, key=lambda side: (first_date(side), natural_key(side)))


def medians(runs: dict[str, dict[str, Any]], groups: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Side -> dotted path -> median over the side's runs that have that number."""
    out: dict[str, dict[str, float]] = {}
    for side, names in groups.items():
        values: dict[str, list[float]] = {}
        for name in names:
            for path, number in measures(runs[name]).items():
                values.setdefault(path, []).append(number)
        out[side] = {path: statistics.median(v) for path, v in values.items()}
    return out


def fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 1 else f"{value:.3f}"


def render(doc: dict[str, Any], title: str) -> str:
    """results.md of a combined directory, from its results.json alone."""
    runs, groups, meds = doc["runs"], doc["groups"], doc["medians"]
    sides = [s for s in doc["side_order"] if s in groups]
    lines = [
        f"# {title}: {len(runs)} runs combined",
        "",
        f"Made by `python {COMBINED_BY}` from the run directories "
        + ", ".join(f"`{n}`" for n in runs)
        + ". `results.json` holds every run's own results.json (`runs`) and the medians below "
        "(`medians`); every run's own table follows.",
        "",
    ]
    by_kind: dict[str, list[str]] = {}
    for side in sides:
        by_kind.setdefault(kind_of(runs[groups[side][0]]), []).append(side)
    for kind, kind_sides in by_kind.items():
        paths = list(dict.fromkeys(p for side in kind_sides for p in meds[side]))
        commits = [
            ", ".join(dict.fromkeys(str(runs[n].get("meta", {}).get("commit", "?")) for n in groups[s]))
            for s in kind_sides
        ]
        lines += [f"## Medians, {kind}", ""]
        lines.append(
            "| | "
            + " | ".join(f"{s} ({len(groups[s])} run{'s' if len(groups[s]) > 1 else ''})" for s in kind_sides)
            + " |"
        )
        lines.append("|---|" + "---|" * len(kind_sides))
        lines.append("| commit | " + " | ".join(commits) + " |")
        for path in paths:
            cells = [fmt(meds[s][path]) if path in meds[s] else "" for s in kind_sides]
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
        lines.append("")
    for where, summary in doc.get("ab_summary", {}).items():
        label = "" if where == "." else f" of `{where}`"
        lines += [f"## ab_summary.py{label} (ranges and means)", "", summary["md"].rstrip(), ""]
    lines += ["## Runs", ""]
    for name, text in doc["runs_md"].items():
        lines += [f"### {name}", "", text.rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def stack_pngs(paths: list[tuple[str, Path]], target: Path) -> None:
    """The PNGs one above the other, each under a band with its run's name; pixels unchanged."""
    from PIL import Image, ImageDraw, ImageFont

    images = [(label, Image.open(p).convert("RGB")) for label, p in paths]
    band = 28
    font = ImageFont.load_default(size=16)
    width = max(img.width for _, img in images)
    height = sum(img.height + band for _, img in images)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for label, img in images:
        draw.text((8, y + 5), label, fill="black", font=font)
        sheet.paste(img, (0, y + band))
        y += img.height + band
    sheet.save(target, optimize=True)


def combine(root: Path, each: bool) -> tuple[dict[str, Any], list[str]]:
    """The combined document of root's run directories (and their names)."""
    names = find_runs(root)
    runs = {name: json.loads((root / name / "results.json").read_text()) for name in names}
    runs_md = {
        name: (root / name / "results.md").read_text() if (root / name / "results.md").is_file() else ""
        for name in names
    }
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(side_of(name, each), []).append(name)
    summaries = {}
    for path in sorted(root.rglob("summary.json"), key=lambda p: natural_key(str(p))):
        md = path.with_name("summary.md")
        summaries[path.parent.relative_to(root).as_posix()] = {
            "json": json.loads(path.read_text()),
            "md": md.read_text() if md.is_file() else "",
        }
    doc: dict[str, Any] = {
        "combined_by": COMBINED_BY,
        "side_order": order_sides(runs, groups),
        "groups": groups,
        "medians": medians(runs, groups),
        "runs": runs,
        "runs_md": runs_md,
    }
    if summaries:
        doc["ab_summary"] = summaries
    return doc, names


def write_pngs(root: Path, doc: dict[str, Any]) -> list[str]:
    """One stacked PNG per plot name, from the first run of each side; their names."""
    plots: dict[str, list[tuple[str, Path]]] = {}
    for side in doc["side_order"]:
        names = doc["groups"][side]
        label = names[0] if len(names) == 1 else f"{names[0]} (the first of {len(names)} {side} runs)"
        for png in sorted((root / names[0]).glob("*.png")):
            plots.setdefault(png.name, []).append((label, png))
    for name, paths in plots.items():
        stack_pngs(paths, root / name)
    return list(plots)


def collect(root: Path, each: bool = False, remove: bool = False) -> Path:
    """Write root/results.json, results.md and PNGs; returns the results.md path."""
    combined = root / "results.json"
    names = find_runs(root)
    if names:
        if combined.is_file() and "combined_by" not in json.loads(combined.read_text()):
            raise SystemExit(f"{combined} is one run's result, not a combination: not overwriting it")
        doc, names = combine(root, each)
        doc["pngs"] = write_pngs(root, doc)
        combined.write_text(json.dumps(doc, indent=2) + "\n")
    elif combined.is_file() and "combined_by" in json.loads(combined.read_text()):
        doc = json.loads(combined.read_text())  # already combined: re-render the summary only
    else:
        raise SystemExit(f"no run directories (holding results.json) under {root}")
    target = root / "results.md"
    target.write_text(render(doc, root.name))
    if remove:
        for name in names:
            shutil.rmtree(root / name)
        for stale in list(root.rglob("summary.json")) + list(root.rglob("summary.md")):
            stale.unlink()
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    return target


def unpack(combined: Path, dest: Path) -> None:
    """Write every run's results.json and results.md back under dest/<run>/."""
    doc = json.loads(combined.read_text())
    for name, run in doc["runs"].items():
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(run, indent=2))
        (folder / "results.md").write_text(doc["runs_md"].get(name, ""))


_MENTION = re.compile(r"(?<![\w/.-])(benchmarks/)?results/[\w.*{}<>,$/-]+")


def _expand(text: str) -> list[str]:
    """Brace expansion: 'a/{x,y}-1' -> ['a/x-1', 'a/y-1']."""
    match = re.search(r"\{([^{}]*)\}", text)
    if not match:
        return [text]
    return [
        out
        for option in match.group(1).split(",")
        for out in _expand(text[: match.start()] + option + text[match.end() :])
    ]


def _as_glob(text: str) -> str:
    return re.sub(r"<[^>]*>|\$\w+", "*", text)


def _folded_into(repo: Path, pattern: str) -> str | None:
    """The combined results.json that holds the run this path names (benchmarks/results/<dir>/<run>)."""
    parts = pattern.split("/")
    combined = "/".join(parts[:3]) + "/results.json"
    if len(parts) < 4 or not (repo / combined).is_file():
        return None
    doc = json.loads((repo / combined).read_text())
    for run in doc.get("runs", {}) if "combined_by" in doc else {}:
        depth = run.count("/") + 1  # what follows the run's folder (its results.md, ...) is in the file too
        if fnmatch.fnmatch(run, "/".join(parts[3 : 3 + depth])):
            return combined
    return None


def path_status(repo: Path, mention: str) -> str:
    """'exists', 'a run in <dir>/results.json' (a run folded into a combination) or 'missing'."""
    status = "exists"
    for variant in _expand(mention.rstrip(".,:;)`")):
        pattern = _as_glob(variant.rstrip("/"))
        if (repo / pattern).exists() or any(repo.glob(pattern)):
            continue
        combined = _folded_into(repo, pattern)
        if combined is None:
            return "missing"
        status = f"a run in {combined}"
    return status


def check_paths(repo: Path) -> int:
    """Print every benchmarks/results/... path the tracked files mention that does not exist."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    missing = 0
    for name in files:
        path = repo / name
        if name.startswith(("benchmarks/results/", "benchmarks/runs/")) or not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for match in _MENTION.finditer(line):
                mention = match.group(0)
                if not match.group(1):  # a bare results/...: relative to benchmarks/ only
                    if not name.startswith("benchmarks/"):
                        continue
                    mention = f"benchmarks/{mention}"
                status = path_status(repo, mention)
                if status != "exists":
                    print(f"{name}:{lineno}: {mention}: {status}")
                    missing += status == "missing"
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="comparison directories")
    parser.add_argument("--each", action="store_true", help="every run is its own side")
    parser.add_argument("--remove", action="store_true", help="delete the run directories afterwards")
    parser.add_argument("--unpack", type=Path, help="write the runs of one combined directory here")
    parser.add_argument(
        "--check-paths",
        action="store_true",
        help="list the benchmarks/results paths the repository (DIR: its root) names that do not exist",
    )
    args = parser.parse_args()
    if args.check_paths:
        raise SystemExit(1 if check_paths(args.dirs[0]) else 0)
    if args.unpack:
        if len(args.dirs) != 1:
            parser.error("--unpack takes one combined directory")
        unpack(args.dirs[0] / "results.json", args.unpack)
        return
    for root in args.dirs:
        print(collect(root, each=args.each, remove=args.remove))


if __name__ == "__main__":
    main()
