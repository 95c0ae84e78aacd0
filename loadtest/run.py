"""``hashrec loadtest``: run the locustfile headless against a service and summarize the run.

Locust runs in a subprocess (``python -m locust``; gevent's monkey-patching stays out of the
calling process). Around it: the host check (loopback only unless allowed), a readiness wait,
the service's ``/metrics`` read before and after (cache hit ratio of this run), and after it
``summary.json`` and ``timeline.png`` built from Locust's CSV files.
"""

from __future__ import annotations

import csv
import ipaddress
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hashrec.loadtest.config import ROUTES, LoadTestConfig, parse_mix, parse_run_time, user_rps

PACKAGE = Path(__file__).parent
LOCUSTFILE = PACKAGE / "locustfile.py"
STEP_SHAPE = PACKAGE / "step_shape.py"
CSV_PREFIX = "locust"
PERCENTILES = {"p50": "50%", "p95": "95%", "p99": "99%", "p999": "99.9%"}


class LoadTestError(Exception):
    """Bad input or a service that cannot be tested; the CLI prints it and exits 2."""


def check_host(url: str, allow_remote: bool) -> str:
    """The base URL without a trailing slash; refuses hosts outside loopback unless allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadTestError(f"--host {url!r} is not an http(s)://HOST[:PORT] URL")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise LoadTestError(f"--host {url!r}: give the service's base URL, without a path")
    if not allow_remote and not is_loopback(parts.hostname):
        raise LoadTestError(
            f"refusing to load-test {parts.hostname}: not a loopback address (127.0.0.0/8, ::1, "
            "localhost); pass --allow-remote to test a host you run"
        )
    return url.rstrip("/")


def is_loopback(hostname: str) -> bool:
    if hostname.lower() in ("localhost", "localhost.localdomain") or hostname.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"accept": "*/*"})  # noqa: S310 (http(s) checked)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def wait_ready(base: str, timeout_s: float) -> dict[str, Any]:
    """Poll /readyz until 200; returns its body, or raises LoadTestError with the last reason."""
    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while True:
        try:
            status, body = _get(f"{base}/readyz", timeout=2)
            if status == 200:
                return dict(json.loads(body))
            reason = f"/readyz answered {status}: {body.decode(errors='replace')[:200]}"
        except (OSError, ValueError) as err:
            reason = f"{type(err).__name__}: {err}"
        if time.monotonic() >= deadline:
            raise LoadTestError(f"service at {base} is not ready after {timeout_s:g}s ({reason})")
        time.sleep(0.5)


_SAMPLE = re.compile(r"^hashrec_cache_total\{([^}]*)\}\s+(\S+)", re.MULTILINE)


def cache_counters(metrics_text: str) -> dict[str, float]:
    """{'hit': n, 'miss': n} from a Prometheus exposition (summed over label sets)."""
    counts = {"hit": 0.0, "miss": 0.0}
    for labels, value in _SAMPLE.findall(metrics_text):
        match = re.search(r'result="([^"]*)"', labels)
        if match and match.group(1) in counts:
            counts[match.group(1)] += float(value)
    return counts


def read_cache(base: str) -> dict[str, float] | str:
    """The cache counters now, or the reason they could not be read."""
    try:
        status, body = _get(f"{base}/metrics")
    except OSError as err:
        return f"GET /metrics failed: {err}"
    if status != 200:
        return f"GET /metrics answered {status}"
    return cache_counters(body.decode(errors="replace"))


def _number(value: str | None) -> float | None:
    if value is None or value in ("", "N/A"):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def percentile(response_times: dict[float, int], count: int, percent: float) -> float | None:
    """Locust's own percentile rule over a {rounded ms: count} histogram."""
    if not count:
        return None
    wanted = int(count * percent)
    seen = 0
    for ms in sorted(response_times, reverse=True):
        seen += response_times[ms]
        if count - seen <= wanted:
            return float(ms)
    return 0.0


def _entry_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests, failures, requests/s and latency of Locust stats entries taken together."""
    times: dict[float, int] = {}
    for entry in entries:
        for ms, n in entry["response_times"].items():
            times[float(ms)] = times.get(float(ms), 0) + int(n)
    requests = sum(int(e["num_requests"]) for e in entries)
    failures = sum(int(e["num_failures"]) for e in entries)
    first = min((e["start_time"] for e in entries), default=0.0)
    last = max((e["last_request_timestamp"] or 0.0 for e in entries), default=0.0)
    total_ms = sum(float(e["total_response_time"]) for e in entries)
    return {
        "requests": requests,
        "failures": failures,
        "requests_per_s": round(requests / (last - first), 2) if last > first else 0.0,
        "latency_ms": {
            **{name: percentile(times, requests, float(col[:-1]) / 100) for name, col in PERCENTILES.items()},
            "mean": round(total_ms / requests, 2) if requests else None,
            "max": round(max(float(e["max_response_time"]) for e in entries), 2) if requests else None,
        },
    }


def read_stats(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(all requests, per route) from the final stats Locust saves at exit (``--json-file``).

    The CSV files are written every second while Locust runs, so their last rows may miss the
    final second; the JSON file is written once, at exit, and is exact.
    """
    path = out / f"{CSV_PREFIX}_stats.json"
    if not path.exists():
        raise LoadTestError(f"Locust wrote no {path.name}; see {out / 'locust.log'}")
    entries = json.loads(path.read_text())
    routes = {e["name"]: _entry_summary([e]) for e in entries}
    return _entry_summary(entries), routes


def read_history(out: Path) -> list[dict[str, float]]:
    """One point per row of locust_stats_history.csv (about one a second).

    Throughput is the change of the total request and failure counts between rows (Locust's own
    Requests/s column lags by a few seconds); latency percentiles are Locust's over its last 10 s
    (``--csv-full-history`` makes them windowed; without it they are cumulative).
    """
    path = out / f"{CSV_PREFIX}_stats_history.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    points = []
    for previous, row in pairwise(rows):
        seconds = max(float(row["Timestamp"]) - float(previous["Timestamp"]), 1.0)
        requests = float(row["Total Request Count"]) - float(previous["Total Request Count"])
        failures = float(row["Total Failure Count"]) - float(previous["Total Failure Count"])
        points.append(
            {
                "t": float(row["Timestamp"]),
                "users": float(row["User Count"]),
                "rps": requests / seconds,
                "fails": failures / seconds,
                **{name: _number(row.get(column)) or math.nan for name, column in PERCENTILES.items()},
            }
        )
    return points


def plot_timeline(points: list[dict[str, float]], path: Path, title: str) -> None:
    """Throughput (and users) on top, p50/p95/p99 latency below, against seconds since the start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = points[0]["t"] - 1.0
    seconds = [p["t"] - t0 for p in points]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, constrained_layout=True)
    top.plot(seconds, [p["rps"] for p in points], label="requests/s", color="tab:blue")
    top.plot(seconds, [p["fails"] for p in points], label="failures/s", color="tab:red")
    top.set_ylabel("requests/s")
    users = top.twinx()
    users.step(
        seconds, [p["users"] for p in points], where="post", color="tab:gray", alpha=0.6, label="users"
    )
    users.set_ylabel("users")
    users.set_ylim(0, max(p["users"] for p in points) * 1.15 + 1)
    top.set_ylim(bottom=0)
    lines = top.get_legend_handles_labels()
    more = users.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left")
    for name, color in (("p50", "tab:green"), ("p95", "tab:orange"), ("p99", "tab:red")):
        bottom.plot(seconds, [p[name] for p in points], label=name, color=color)
    bottom.set_ylabel("latency (ms, last 10 s window)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper left")
    top.set_title(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def locust_command(cfg: LoadTestConfig, base: str) -> list[str]:
    """The ``python -m locust`` command line of this run."""
    out = cfg.out
    files = str(LOCUSTFILE) + (f",{STEP_SHAPE}" if cfg.shape == "step" else "")
    cmd = [
        sys.executable, "-m", "locust", "-f", files, "--headless", "--host", base,
        "--csv", str(out / CSV_PREFIX), "--csv-full-history", "--json-file", str(out / f"{CSV_PREFIX}_stats"),
        "--html", str(out / "report.html"),
        "--only-summary", "--stop-timeout", "5", "--loglevel", "INFO",
        "--hashrec-store", cfg.store, "--hashrec-mix", cfg.mix,
        "--hashrec-unknown-share", str(cfg.unknown_share), "--hashrec-zipf", str(cfg.zipf),
        "--hashrec-k", str(cfg.k), "--hashrec-batch-size", str(cfg.batch_size),
        "--hashrec-seed", str(cfg.seed),
    ]  # fmt: skip
    if cfg.shape == "step":
        cmd += [
            "--hashrec-step-users", str(cfg.step_users), "--hashrec-step-time", str(cfg.step_time),
            "--hashrec-max-steps", str(cfg.max_steps), "--hashrec-p99-target-ms", str(cfg.p99_target_ms),
            "--hashrec-steps-out", str(out / "steps.json"),
        ]  # fmt: skip
    else:
        cmd += ["-u", str(cfg.users), "-r", str(cfg.spawn_rate), "-t", cfg.run_time]
        cmd += ["--hashrec-user-rps", repr(user_rps(cfg))]
    if cfg.expect_workers:
        cmd += ["--master", "--master-bind-port", str(cfg.master_port)]
        cmd += ["--expect-workers", str(cfg.expect_workers), "--expect-workers-max-wait", "120"]
    return cmd


def validate(cfg: LoadTestConfig) -> str:
    """Check every option; returns the base URL. Raises LoadTestError with a one-line reason."""
    base = check_host(cfg.host, cfg.allow_remote)
    try:
        parse_mix(cfg.mix)
        parse_run_time(cfg.run_time)
    except ValueError as err:
        raise LoadTestError(str(err)) from None
    if cfg.shape not in ("fixed", "step"):
        raise LoadTestError(f"--shape must be fixed or step, got {cfg.shape!r}")
    if not 0.0 <= cfg.unknown_share <= 1.0:
        raise LoadTestError("--unknown-share must be between 0 and 1")
    if cfg.rps < 0:
        raise LoadTestError("--rps must be >= 0")
    return base


def run_loadtest(cfg: LoadTestConfig) -> dict[str, Any]:
    """Run Locust headless and write the summary; returns it. Raises LoadTestError before any load."""
    base = validate(cfg)
    from hashrec.model_store import ModelStore, StoreError

    try:
        ids_version = ModelStore(cfg.store).open().version
    except (StoreError, OSError) as err:
        raise LoadTestError(
            f"--store {cfg.store}: {err} (the load test reads user and item ids there)"
        ) from None
    try:  # before the wait for the service, so a bad --out fails at once
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise LoadTestError(f"--out {cfg.out}: {err.strerror or err}") from None
    ready = wait_ready(base, cfg.ready_timeout)
    served = ready.get("model_version")
    for stale in [*cfg.out.glob(f"{CSV_PREFIX}_*"), cfg.out / "steps.json", cfg.out / "summary.json"]:
        stale.unlink(missing_ok=True)
    before = read_cache(base)
    command = locust_command(cfg, base)
    if cfg.shape == "step":
        budget = cfg.step_time * (cfg.max_steps + 1) + 60
    else:
        budget = parse_run_time(cfg.run_time) + 60 + (150 if cfg.expect_workers else 0)
    started = time.time()
    env = {**os.environ, **cfg.extra_env, "PYTHONUNBUFFERED": "1"}
    with (cfg.out / "locust.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
        try:
            exit_code = process.wait(timeout=budget)
        except subprocess.TimeoutExpired as err:
            process.kill()
            process.wait()
            raise LoadTestError(
                f"Locust ran past {budget:g}s and was stopped; see {cfg.out / 'locust.log'}"
            ) from err
    elapsed = time.time() - started
    after = read_cache(base)
    total, routes = read_stats(cfg.out)
    summary: dict[str, Any] = {
        "host": base,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(elapsed, 1),
        "shape": cfg.shape,
        "users": cfg.users if cfg.shape == "fixed" else None,
        "spawn_rate": cfg.spawn_rate if cfg.shape == "fixed" else None,
        "run_time": cfg.run_time if cfg.shape == "fixed" else None,
        "target_rps": cfg.rps or None,
        "mix": parse_mix(cfg.mix),
        "unknown_share": cfg.unknown_share,
        "zipf": cfg.zipf,
        "k": cfg.k,
        "batch_size": cfg.batch_size,
        "locust_workers": cfg.expect_workers or None,
        "model_version": served,
        "ids_version": ids_version,
        **total,
        "failure_ratio": round(total["failures"] / total["requests"], 6) if total["requests"] else None,
        "routes": {name: routes[name] for name in sorted(routes)},
        "cache": _cache_delta(before, after),
        "locust_exit_code": exit_code,
    }
    if served != ids_version:
        summary["warning"] = (
            f"the service served {served} at the start but the store's current version is "
            f"{ids_version}: answers of another version get structural checks only"
        )
    steps_path = cfg.out / "steps.json"
    if cfg.shape == "step" and steps_path.exists():
        summary["step_ramp"] = json.loads(steps_path.read_text())
    files = {
        "stats_json": f"{CSV_PREFIX}_stats.json",
        "stats_csv": f"{CSV_PREFIX}_stats.csv",
        "history_csv": f"{CSV_PREFIX}_stats_history.csv",
        "failures_csv": f"{CSV_PREFIX}_failures.csv",
        "html": "report.html",
        "log": "locust.log",
    }
    points = read_history(cfg.out)
    if points:
        try:
            plot_timeline(points, cfg.out / "timeline.png", f"hashrec load test: {base}")
            files["png"] = "timeline.png"
        except ImportError:
            summary["png_error"] = "matplotlib is not installed"
    summary["files"] = {k: v for k, v in files.items() if (cfg.out / v).exists()}
    (cfg.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _cache_delta(before: dict[str, float] | str, after: dict[str, float] | str) -> dict[str, Any]:
    if isinstance(before, str) or isinstance(after, str):
        return {"error": before if isinstance(before, str) else after}
    hits = after["hit"] - before["hit"]
    misses = after["miss"] - before["miss"]
    lookups = hits + misses
    return {
        "hits": int(hits),
        "misses": int(misses),
        "hit_ratio": round(hits / lookups, 4) if lookups else None,
        "note": "service-wide counters over the run (/v1/recommend lookups; batch and similar are uncached)",
    }


__all__ = ["ROUTES", "LoadTestConfig", "LoadTestError", "check_host", "run_loadtest"]
