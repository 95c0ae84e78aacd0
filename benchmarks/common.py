"""Helpers shared by the benchmark scripts: ports, local servers, run metadata."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """A private redis-server on 127.0.0.1:port that keeps nothing on disk (DEBUG allowed locally)."""
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--enable-debug-command",
            "local",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def start_service(
    store: Path, port: int, env: dict[str, str] | None = None, workers: int = 1, timeout_s: float = 300
) -> tuple[subprocess.Popen[bytes], str]:
    """`hashrec serve` on 127.0.0.1:port, returned once /readyz says ready, with its base URL."""
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, timeout_s)
    return process, base


def wait_ready(base: str, process: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    """Poll base/readyz until 200; kill the process and raise if it exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"service at {base} did not become ready")


def cpu_description() -> str:
    """The CPU model and its widest vector extension (the scan's speed depends on it)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    pairs = (line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in pairs}  # every CPU alike: the last one's
    model = fields.get("model name", "")
    flags = set(fields.get("flags", "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model or platform.machine()} ({vector})"


def hashrec_env() -> dict[str, str]:
    """The HASHREC_* settings in the environment (they reach servers the script starts)."""
    return {key: value for key, value in sorted(os.environ.items()) if key.startswith("HASHREC_")}


def machine_description() -> str:
    """The CPU (see :func:`cpu_description`), its count and the memory, for result files."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu_description()}, {os.cpu_count()} CPUs, {memory_gib:.0f} GiB"


def git_commit(*paths: str) -> str:
    """The short commit of HEAD, with ``+dirty`` when tracked files (under ``paths``, if given)
    differ from it; ``unknown`` outside a git checkout."""
    repo = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *paths],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if changed.stdout.strip() else "")


def run_metadata() -> dict[str, object]:
    """Date, machine, git commit and HASHREC_* settings, stored beside every result."""
    commit = git_commit()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu": cpu_description(),
        "python": platform.python_version(),
        "commit": commit,
        "hashrec_env": hashrec_env(),
    }
