"""Find or start a Redis server for tests that need a real one.

Order: $HASHREC_TEST_REDIS_URL if set; a server answering on 127.0.0.1:6379; else a private
`redis-server` started on a free port (needs the redis-server binary on PATH). When none of
these works, the tests that need Redis are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support import free_port


def _ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int, workdir: str, debug_commands: bool = False) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on 127.0.0.1:port that keeps nothing on disk.

    ``debug_commands`` allows DEBUG SLEEP from local clients (Redis >= 7).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server is not on PATH")
    process = subprocess.Popen(
        [
            binary,
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
            *(["--enable-debug-command", "local"] if debug_commands else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _ping("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return process


@contextmanager
def redis_url() -> Iterator[str]:
    """Yield a redis:// URL of a reachable server, or raise LookupError saying why there is none."""
    if url := os.environ.get("HASHREC_TEST_REDIS_URL"):
        yield url
        return
    if _ping("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/15"
        return
    workdir = tempfile.mkdtemp(prefix="hashrec-redis-")
    port = free_port()
    try:
        process = start_redis(port, workdir)
    except (FileNotFoundError, RuntimeError) as err:
        shutil.rmtree(workdir, ignore_errors=True)
        raise LookupError(
            f"no Redis: nothing answers on 127.0.0.1:6379 and no private server could start ({err}); "
            "install redis-server or set HASHREC_TEST_REDIS_URL"
        ) from err
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def private_redis_or_skip(
    workdir: str, why: str, debug_commands: bool = False
) -> tuple[int, subprocess.Popen[bytes]]:
    """(port, process) of a throwaway redis-server that a test may stop, restart or slow down;
    skips the test, saying ``why`` it needs one, where redis-server cannot run."""
    import pytest

    port = free_port()
    try:
        return port, start_redis(port, workdir, debug_commands=debug_commands)
    except (FileNotFoundError, RuntimeError) as err:
        pytest.skip(f"needs redis-server on PATH {why}: {err}")


def fast_failing_redis_settings(store: object, port: int) -> object:
    """Service settings on that Redis with a 50 ms timeout, no store polling."""
    from hashrec.service.settings import Settings

    return Settings(
        store=store, poll_interval_s=0, redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout_s=0.05
    )
