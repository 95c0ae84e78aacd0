"""Step-ramp load shape: add users step by step until p99 exceeds a target.

Loaded next to the locustfile (``locust -f loadtest/locustfile.py,loadtest/step_shape.py``;
``hashrec loadtest --shape step`` does this). Step n runs ``n x --hashrec-step-users`` users for
``--hashrec-step-time`` seconds. After a short warm-up (a quarter of the step, at most 2 s) the
step's own requests are measured: throughput, failures and p99 from the difference of Locust's
cumulative response-time histogram between two snapshots. The ramp stops at the first step whose
p99 exceeds ``--hashrec-p99-target-ms`` (or that has failures), or after ``--hashrec-max-steps``;
the answer is the step with the highest throughput that met the target. Results go to
``--hashrec-steps-out`` as JSON after every step.

In distributed runs workers report every 3 s: use steps of 10 s or more there.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import LoadTestShape
from locust.stats import calculate_response_time_percentile


class StepRampShape(LoadTestShape):
    """Adds ``step_users`` users per step; stops when a step's p99 is over the target."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[dict[str, Any]] = []
        self.stopped_because: str | None = None
        self._step = -1
        self._mark: tuple[float, int, int, dict[int, int]] | None = None

    def _snapshot(self) -> tuple[float, int, int, dict[int, int]]:
        total = self.runner.stats.total  # type: ignore[union-attr]
        return time.monotonic(), total.num_requests, total.num_failures, dict(total.response_times)

    def _measure(self, users: int) -> dict[str, Any]:
        assert self._mark is not None
        t0, n0, f0, times0 = self._mark
        t1, n1, f1, times1 = self._snapshot()
        delta = {ms: c - times0.get(ms, 0) for ms, c in times1.items() if c - times0.get(ms, 0) > 0}
        count = n1 - n0

        def pct(p: float) -> float | None:
            return float(calculate_response_time_percentile(delta, count, p)) if count else None

        return {
            "step": self._step + 1,
            "users": users,
            "seconds": round(t1 - t0, 3),
            "requests": count,
            "failures": f1 - f0,
            "requests_per_s": round(count / max(t1 - t0, 1e-9), 2),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
        }

    def _write(self, options: Any) -> None:
        path = getattr(options, "hashrec_steps_out", "")
        if not path:
            return
        target = options.hashrec_p99_target_ms
        met = [
            s for s in self.steps if s["p99_ms"] is not None and s["p99_ms"] <= target and not s["failures"]
        ]
        best = max(met, key=lambda s: s["requests_per_s"]) if met else None
        doc = {
            "p99_target_ms": target,
            "step_users": options.hashrec_step_users,
            "step_time_s": options.hashrec_step_time,
            "steps": self.steps,
            "best": best,
            "stopped_because": self.stopped_because,
        }
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2)
        os.replace(tmp, path)

    def tick(self) -> tuple[int, float] | None:
        options: Any = self.runner.environment.parsed_options  # type: ignore[union-attr]
        step_time = max(float(options.hashrec_step_time), 1.0)
        step_users = max(int(options.hashrec_step_users), 1)
        run_time = self.get_run_time()
        step = int(run_time // step_time)
        if step != self._step:
            if self._step >= 0:
                if self._mark is None:  # a step too short to measure: count it as no requests
                    self._mark = self._snapshot()
                result = self._measure((self._step + 1) * step_users)
                self.steps.append(result)
                if result["failures"]:
                    self.stopped_because = f"step {result['step']} had {result['failures']} failures"
                elif result["p99_ms"] is None:
                    self.stopped_because = f"step {result['step']} completed no request"
                elif result["p99_ms"] > options.hashrec_p99_target_ms:
                    self.stopped_because = (
                        f"step {result['step']}: p99 {result['p99_ms']:g} ms over the "
                        f"{options.hashrec_p99_target_ms:g} ms target"
                    )
                elif step >= options.hashrec_max_steps:
                    self.stopped_because = f"max steps ({options.hashrec_max_steps}) reached"
                self._write(options)
                if self.stopped_because:
                    return None
            self._step = step
            self._mark = None
        if self._mark is None and run_time - step * step_time >= min(step_time / 4, 2.0):
            self._mark = self._snapshot()
        return (step + 1) * step_users, float(step_users * 4)
