"""Load-test fixtures: a small store, `hashrec serve` on a free loopback port, run helpers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hashrec.model_store import ModelStore

from tests.conftest import planted_arrays, publish_arrays
from tests.support import start_serve


def clean_env() -> dict[str, str]:
    """This process's environment without service settings or a metrics directory."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HASHREC_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }


def require_locust() -> None:
    """Locust runs in subprocesses only (it monkey-patches with gevent on import)."""
    if importlib.util.find_spec("locust") is None:
        pytest.fail("locust is not installed: pip install -e '.[load]' (the load-test extra)")


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_cli(*args: str, timeout_s: float = 120) -> tuple[int, dict | None, str]:
    """`hashrec ARGS` as a subprocess: (exit code, its JSON line or None, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "hashrec", *args], capture_output=True, text=True, timeout=timeout_s
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, (json.loads(lines[-1]) if lines else None), result.stderr


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """A store with one planted model (no training: quick), 300 users and 500 items."""
    root = tmp_path_factory.mktemp("loadtest-store") / "store"
    publish_arrays(ModelStore(root), planted_arrays(), dataset={"source": "planted"})
    return root


@pytest.fixture(scope="module")
def service(small_store):
    """(base URL, store) of `hashrec serve` with the in-process cache, one worker."""
    require_locust()
    process, base = start_serve(small_store, env={"HASHREC_CACHE_ENABLED": "true"})
    try:
        yield base, small_store
    finally:
        stop(process)
