"""Connections that never send a whole request are closed (HASHREC_REQUEST_READ_TIMEOUT_S);
idle keep-alive ones after HASHREC_KEEP_ALIVE_S; a full request is served as before."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.support import start_serve


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` (recv returns b'') within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def server(store):  # type: ignore[no-untyped-def]
    env = {
        "HASHREC_REQUEST_READ_TIMEOUT_S": "1",
        "HASHREC_KEEP_ALIVE_S": "1",
        "HASHREC_CACHE_ENABLED": "false",
    }
    process, base = start_serve(store.root, env)
    yield urlsplit(base)
    process.terminate()
    process.wait(timeout=30)


def _connect(url) -> socket.socket:  # type: ignore[no-untyped-def]
    return socket.create_connection((url.hostname, url.port), timeout=5)


def test_a_silent_connection_is_closed(server) -> None:  # type: ignore[no-untyped-def]
    with _connect(server) as sock:
        assert _closed_within(sock, 8)


def test_a_slow_header_is_closed(server) -> None:  # type: ignore[no-untyped-def]
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\n")
        for _ in range(6):  # a header line every 0.4 s: data keeps arriving, the request never completes
            time.sleep(0.4)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        assert _closed_within(sock, 8) and time.monotonic() - started < 9


def test_a_slow_body_is_closed(server) -> None:  # type: ignore[no-untyped-def]
    with _connect(server) as sock:
        sock.sendall(
            b"POST /v1/recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        assert _closed_within(sock, 8)


def test_a_whole_request_is_answered_then_idle_keep_alive_closes(server) -> None:  # type: ignore[no-untyped-def]
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert _closed_within(sock, 8)
