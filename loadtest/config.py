"""Parsing of the load-test settings shared by ``hashrec loadtest`` and the locustfile."""

from __future__ import annotations

import re

ACTIONS = ("recommend", "batch", "similar")
ROUTES = {"recommend": "/v1/recommend", "batch": "/v1/recommend/batch", "similar": "/v1/similar-items"}
DEFAULT_MIX = "recommend=8,batch=1,similar=1"

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
