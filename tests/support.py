"""Helpers for tests that run `hashrec serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Poll /readyz until 200; fail the test if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"service exited with {process.returncode}")
        time.sleep(0.2)
    pytest.fail("service never became ready")


def start_serve(
    store: Path, env: dict[str, str] | None = None, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m hashrec serve` on a free port, ready; returns the process and its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hashrec",
            "serve",
            "--store",
            str(store),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, base
