"""Graceful shutdown under load, and a slow Redis that must not hold requests up."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import httpx
import pytest
from hashrec.service.app import create_app

from tests.service.redis_server import (
    fast_failing_redis_settings,
    private_redis_or_skip,
)
from tests.support import start_serve


def test_sigterm_drains_without_dropping_a_request(trained):
    """A client behaving like a load balancer (stops when /readyz says 503) loses nothing."""
    data, store = trained
    process, base = start_serve(
        store.root, {"HASHREC_CACHE_ENABLED": "false", "HASHREC_SHUTDOWN_DRAIN_S": "1.0"}
    )
    users = [str(u) for u in data.user_ids[:200]]
    outcomes: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop() -> None:
        # No keep-alive: a request reused on a connection the server is closing is a client-side
        # race (retry territory), not a request dropped in flight.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=base, timeout=30, limits=limits) as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/recommend/batch", json={"user_ids": users[:50], "k": 100})
                    outcome = "ok" if response.status_code == 200 else f"status {response.status_code}"
                except httpx.ConnectError:
                    outcome = "refused"  # never started: the server had stopped accepting
                except httpx.TransportError as err:
                    outcome = f"dropped {type(err).__name__}"  # started, then cut: a failure
                with lock:
                    outcomes.append(outcome)
                if outcome == "refused":
                    return

    def balancer() -> None:
        with httpx.Client(base_url=base, timeout=5) as client:
            while not stop.is_set():
                try:
                    if client.get("/readyz").status_code != 200:
                        stop.set()
                except httpx.TransportError:
                    stop.set()
                time.sleep(0.05)

    threads = [threading.Thread(target=client_loop) for _ in range(4)] + [threading.Thread(target=balancer)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean stop
    assert stop.is_set() and outcomes.count("ok") >= 4
    assert [o for o in outcomes if o != "ok"] == []


@pytest.mark.anyio
async def test_slow_redis_times_out_fast_and_answers_uncached(trained, tmp_path):
    data, store = trained
    port, redis = private_redis_or_skip(str(tmp_path), "to make it slow", debug_commands=True)
    settings = fast_failing_redis_settings(store.root, port)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                blocker = await asyncio.create_subprocess_exec(
                    "redis-cli",
                    "-p",
                    str(port),
                    "DEBUG",
                    "SLEEP",
                    "2",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await asyncio.sleep(0.2)  # Redis is now asleep for ~2 s
                started = time.monotonic()
                response = await client.post("/v1/recommend", json={"user_id": str(data.user_ids[1])})
                elapsed = time.monotonic() - started
                await blocker.wait()
            assert response.status_code == 200 and response.json()["cached"] is False
            assert app.state.service.cache.errors >= 1
            # Not a speed benchmark: only that the request did not wait out Redis's 2 s sleep.
            assert elapsed < 1.5
    finally:
        redis.terminate()
        redis.wait(timeout=10)


@pytest.fixture
def anyio_backend():
    return "asyncio"
