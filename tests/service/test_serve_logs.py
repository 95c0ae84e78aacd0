"""`hashrec serve --workers 2` logs one JSON object per line, from the parent and the workers."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import free_port, wait_ready


def test_every_line_of_a_two_worker_serve_is_json(store) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    argv = [sys.executable, "-m", "hashrec", "serve", "--store", str(store.root), "--port", str(port)]
    process = subprocess.Popen([*argv, "--workers", "2"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)  # type: ignore[arg-type]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert any("parent process" in line for line in lines)
    for line in lines:
        assert isinstance(json.loads(line), dict), line
