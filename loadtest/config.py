"""The load-test settings (their one set of defaults) and their parsing.

``LoadTestConfig`` is the one home of every load-test default: ``hashrec loadtest``'s options
(``hashrec/loadtest_cli.py``), ``loadtest/run.py`` and the locustfile's ``--hashrec-*`` options all
read them from ``DEFAULTS``. Plain Python (no Locust import): safe to import anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ACTIONS = ("recommend", "batch", "similar")
ROUTES = {"recommend": "/v1/recommend", "batch": "/v1/recommend/batch", "similar": "/v1/similar-items"}


@dataclass(frozen=True)
class LoadTestConfig:
    """One load-test run; the field defaults are the defaults of every entry point."""

    host: str = "http://127.0.0.1:8000"
    store: str = "store"  # a directory or s3://bucket/prefix
    out: Path = Path("loadtest-results")
    users: int = 20
    spawn_rate: float = 10.0
    run_time: str = "30s"
    shape: str = "fixed"  # fixed | step
    rps: float = 0.0  # total target requests/s (constant throughput); 0: closed loop, no wait
    mix: str = "recommend=8,batch=1,similar=1"
    unknown_share: float = 0.05
    zipf: float = 1.1
    k: int = 20
    batch_size: int = 8
    seed: int = 0
    step_users: int = 10
    step_time: float = 10.0
    max_steps: int = 10
    p99_target_ms: float = 50.0
    expect_workers: int = 0
    master_port: int = 5557
    allow_remote: bool = False
    ready_timeout: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)


DEFAULTS = LoadTestConfig()


def user_rps(cfg: LoadTestConfig) -> float:
    """Requests/s of each Locust user for ``cfg.rps`` in total (0: no wait between requests)."""
    return cfg.rps / cfg.users if cfg.rps > 0 else 0.0


_RUN_TIME = re.compile(r"(\d+)\s*(h|m|s)")


def parse_mix(text: str) -> dict[str, float]:
    """'recommend=8,batch=1,similar=1' -> weights; raises ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in ACTIONS:
            raise ValueError(
                f"mix: {part.strip()!r} is not NAME=WEIGHT with NAME one of {', '.join(ACTIONS)}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"mix: weight {value!r} of {name} is not a number") from None
        if weight < 0:
            raise ValueError(f"mix: weight of {name} is negative")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError("mix: every weight is zero")
    return weights


def parse_run_time(text: str) -> int:
    """Locust's run-time syntax ('30s', '2m', '1h30m', or plain seconds) -> seconds (> 0)."""
    text = text.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _RUN_TIME.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise ValueError(f"run-time: {text!r} is not like 30s, 5m or 1h30m")
        seconds = sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("run-time: must be positive")
    return seconds
