"""`hashrec loadtest` against a real `hashrec serve` on a free loopback port, for a few seconds."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.loadtest.conftest import require_locust, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_fixed_run_writes_a_summary(service, tmp_path):
    base, store = service
    out = tmp_path / "out"
    code, line, stderr = run_cli(
        "loadtest", "--host", base, "--store", str(store), "--users", "4", "--spawn-rate", "4",
        "--run-time", "3s", "--k", "10", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr + (out / "locust.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert line is not None and line["requests"] == summary["requests"]
    assert summary["requests"] > 50 and summary["failures"] == 0 and summary["failure_ratio"] == 0
    assert summary["requests_per_s"] > 10
    latency = summary["latency_ms"]
    # Locust keeps whole milliseconds: a quiet machine answers most requests in under 0.5 ms (p50 = 0)
    assert (
        0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] + 1 and latency["max"] > 0
    )
    assert set(summary["routes"]) == {"/v1/recommend", "/v1/recommend/batch", "/v1/similar-items"}
    assert sum(r["requests"] for r in summary["routes"].values()) == summary["requests"]
    assert summary["model_version"] == summary["ids_version"] and "warning" not in summary
    # Zipf-skewed users against the in-process cache: most lookups are hits
    assert summary["cache"]["hit_ratio"] > 0.3
    assert (
        summary["cache"]["hits"] + summary["cache"]["misses"]
        >= summary["routes"]["/v1/recommend"]["requests"]
    )
    for name in summary["files"].values():
        assert (out / name).stat().st_size > 0
    assert {"stats_csv", "history_csv", "html", "png", "stats_json"} <= set(summary["files"])
    assert (out / "timeline.png").read_bytes().startswith(PNG_MAGIC)
    assert "<html" in (out / "report.html").read_text()[:2000].lower()


def test_constant_throughput_holds_the_asked_rate(service, tmp_path):
    base, store = service
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "loadtest", "--host", base, "--store", str(store), "--users", "3", "--spawn-rate", "10",
        "--rps", "30", "--run-time", "3s", "--k", "10", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_rps"] == 30 and summary["failures"] == 0
    assert 30 * 0.6 <= summary["requests_per_s"] <= 30 * 1.25


def test_step_ramp_reports_each_step_and_the_best(service, tmp_path):
    base, store = service
    out = tmp_path / "out"
    code, _, stderr = run_cli(
        "loadtest", "--host", base, "--store", str(store), "--shape", "step", "--step-users", "2",
        "--step-time", "1.5", "--max-steps", "2", "--p99-target-ms", "2000", "--k", "10", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr + (out / "locust.log").read_text()
    ramp = json.loads((out / "summary.json").read_text())["step_ramp"]
    assert [s["users"] for s in ramp["steps"]] == [2, 4]
    assert all(s["requests"] > 0 and s["p99_ms"] is not None and s["failures"] == 0 for s in ramp["steps"])
    assert ramp["best"] in ramp["steps"] and ramp["stopped_because"].startswith("max steps")


class _WrongService(BaseHTTPRequestHandler):
    """Ready and well-formed, but every recommendation is one item short."""

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/readyz":
            self._send(200, {"status": "ready", "model_version": self.server.version})
        else:
            self._send(404, {"detail": "no such route"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        items = [{"item_id": f"x{i}", "score": 10.0 - i} for i in range(body["k"] - 1)]
        user = body.get("user_id")
        answer = {"user_id": user, "model_version": self.server.version, "fallback": False, "items": items}
        self._send(200, answer)


def test_wrong_answers_are_failures(small_store, tmp_path):
    """A 200 with a wrong body counts as a failure; the command exits 1; /metrics missing is noted."""
    require_locust()
    from hashrec.model_store import ModelStore

    server = ThreadingHTTPServer(("127.0.0.1", 0), _WrongService)
    server.version = ModelStore(small_store).current()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    out = tmp_path / "out"
    try:
        code, _, stderr = run_cli(
            "loadtest", "--host", f"http://127.0.0.1:{server.server_address[1]}", "--store", str(small_store),
            "--users", "2", "--run-time", "2s", "--mix", "recommend=1", "--rps", "20", "--k", "5",
            "--out", str(out),
        )  # fmt: skip
    finally:
        server.shutdown()
    assert code == 1, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failures"] == summary["requests"]
    assert "error" in summary["cache"]
    failures = (out / "locust_failures.csv").read_text()
    assert "expected 5" in failures or "fallback" in failures


@pytest.mark.parametrize("store_arg", ["missing-store"])
def test_a_missing_store_is_a_one_line_error(service, tmp_path, store_arg):
    base, _ = service
    code, _, stderr = run_cli(
        "loadtest", "--host", base, "--store", str(tmp_path / store_arg), "--out", str(tmp_path)
    )
    assert code == 2 and stderr.startswith("error: --store") and len(stderr.strip().splitlines()) == 1
