"""Fault scenarios under load, counted from the client side: requests sent, failed, lost.

Each scenario starts what it needs on 127.0.0.1 (a private redis-server, `hashrec serve`),
drives load from client threads for a bounded time, injects one fault, and counts outcomes.

    python benchmarks/reliability.py --out benchmarks/results/reliability

Needs redis-server and redis-cli on PATH. Writes results.json and results.md into --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import common
from common import free_port, start_redis
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.pipeline import build_index
from hashrec.model_store import FORMAT_VERSION, ModelStore


def start_service(store: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`hashrec serve` (one worker), ready."""
    return common.start_service(store, port, env)[0]


class Load:
    """Client threads posting /v1/recommend until stopped; outcomes and latencies recorded."""

    def __init__(self, base: str, users: list[str], threads: int = 4, keepalive: bool = True) -> None:
        self.base, self.users, self.n_threads, self.keepalive = base, users, threads, keepalive
        self.outcomes: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.cached = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, seed: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if self.keepalive else 0)
        with httpx.Client(base_url=self.base, timeout=10, limits=limits) as client:
            i = seed
            while not self.stop.is_set():
                user = self.users[(i * 7919) % len(self.users)]
                i += 1
                started = time.perf_counter()
                try:
                    response = client.post("/v1/recommend", json={"user_id": user, "k": 20})
                    outcome = "ok" if response.status_code == 200 else f"http {response.status_code}"
                    body = response.json() if response.status_code == 200 else {}
                except httpx.ConnectError:
                    outcome, body = "refused", {}
                except httpx.TransportError as err:
                    outcome, body = f"dropped {type(err).__name__}", {}
                with self.lock:
                    self.outcomes[outcome] += 1
                    self.latencies.append(time.perf_counter() - started)
                    if body:
                        self.versions[body["model_version"]] += 1
                        self.cached += bool(body["cached"])
                if outcome == "refused":
                    return

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def summary(self) -> dict[str, object]:
        latencies = sorted(self.latencies)
        sent = sum(self.outcomes.values())
        return {
            "sent": sent,
            "ok": self.outcomes["ok"],
            "failed": sent - self.outcomes["ok"] - self.outcomes["refused"],
            "refused_after_stop": self.outcomes["refused"],
            "outcomes": dict(self.outcomes),
            "cached_share": round(self.cached / max(self.outcomes["ok"], 1), 3),
            "p50_ms": round(1e3 * latencies[len(latencies) // 2], 2) if latencies else None,
            "p99_ms": round(1e3 * latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
            "max_ms": round(1e3 * latencies[-1], 2) if latencies else None,
            "versions_seen": dict(self.versions),
        }


@contextmanager
def service_on_private_redis(ctx: dict, env: dict[str, str]) -> Iterator[tuple[int, list[Any]]]:  # type: ignore[type-arg]
    """A private redis-server and a service caching in it; yields (redis port, [redis process]),
    the list so a scenario can swap in a restarted process that is stopped at the end too."""
    port = free_port()
    redis = [start_redis(port, ctx["tmp"])]
    service_env = {"HASHREC_REDIS_URL": f"redis://127.0.0.1:{port}/0", "HASHREC_POLL_INTERVAL_S": "0"}
    service = start_service(ctx["store"], free_port_for(ctx), {**service_env, **env})
    try:
        yield port, redis
    finally:
        service.terminate()
        service.wait()
        redis[-1].terminate()
        redis[-1].wait()


def scenario_redis_restart(ctx: dict, seconds: float) -> dict[str, object]:  # type: ignore[type-arg]
    """Redis killed a third of the way in and restarted at two thirds."""
    with service_on_private_redis(ctx, {}) as (port, redis), Load(ctx["base"], ctx["users"]) as load:
        time.sleep(seconds / 3)
        redis[-1].kill()
        redis[-1].wait()
        time.sleep(seconds / 3)
        redis.append(start_redis(port, ctx["tmp"]))
        time.sleep(seconds / 3)
    return load.summary()


def scenario_slow_redis(ctx: dict, seconds: float) -> dict[str, object]:  # type: ignore[type-arg]
    """DEBUG SLEEP 2 on Redis in the middle of the run; the cache timeout is 50 ms."""
    with (
        service_on_private_redis(ctx, {"HASHREC_REDIS_TIMEOUT_S": "0.05"}) as (port, _),
        Load(ctx["base"], ctx["users"]) as load,
    ):
        time.sleep(seconds / 2)
        subprocess.run(
            ["redis-cli", "-p", str(port), "DEBUG", "SLEEP", "2"], check=False, capture_output=True
        )
        time.sleep(seconds / 2)
    return load.summary()


def scenario_damaged_reloads(ctx: dict, seconds: float) -> dict[str, object]:  # type: ignore[type-arg]
    """While under load, three new versions appear: truncated array, bad checksum, newer format."""
    store = ModelStore(ctx["store"])
    good = store.current()
    if good is None:
        raise SystemExit("damaged reloads: the store has no current version to restore")
    service = start_service(
        ctx["store"], free_port_for(ctx), {"HASHREC_POLL_INTERVAL_S": "1", "HASHREC_CACHE_ENABLED": "false"}
    )
    damages: list[Callable[[Path], object]] = [
        lambda d: (d / "item_embeddings.npy").write_bytes((d / "item_embeddings.npy").read_bytes()[:-8]),
        lambda d: (d / "user_codes.npy").write_bytes(b"\x00" + (d / "user_codes.npy").read_bytes()[1:]),
        lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json")
            .read_text()
            .replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99', 1)
        ),
    ]
    try:
        with Load(ctx["base"], ctx["users"]) as load:
            for damage in damages:
                time.sleep(seconds / (len(damages) + 1))
                # Published as current, then damaged at once (bit rot, a bad copy): the poller
                # (1 s interval) finds a current version that fails verification.
                version = publish(store, ctx["data"], seed=len(load.versions) + 5)
                damage(store.versions_dir / version)
            time.sleep(seconds / (len(damages) + 1))
        result = load.summary()
        result["expected_version"] = good
        return result
    finally:
        service.terminate()
        service.wait()
        store.promote(good)


def scenario_sigterm_drain(ctx: dict, seconds: float) -> dict[str, object]:  # type: ignore[type-arg]
    """SIGTERM under load with HASHREC_SHUTDOWN_DRAIN_S=1; clients stop when /readyz says 503."""
    service = start_service(
        ctx["store"], free_port_for(ctx), {"HASHREC_SHUTDOWN_DRAIN_S": "1", "HASHREC_POLL_INTERVAL_S": "0"}
    )
    with Load(ctx["base"], ctx["users"], keepalive=False) as load:
        time.sleep(seconds / 2)
        service.send_signal(signal.SIGTERM)
        while not load.stop.is_set():
            try:
                if httpx.get(f"{ctx['base']}/readyz", timeout=1).status_code != 200:
                    load.stop.set()
            except httpx.TransportError:
                load.stop.set()
            time.sleep(0.05)
        service.wait(timeout=30)
    return load.summary()


def scenario_idle_sockets(ctx: dict, seconds: float, timeout_s: float = 2.0) -> dict[str, object]:  # type: ignore[type-arg]
    """300 idle sockets opened a third of the way in against a server limited to 256 file
    descriptors (prlimit), HASHREC_REQUEST_READ_TIMEOUT_S=timeout_s: requests fail while the
    sockets hold the descriptors, and succeed again once the server has closed them (with 3600,
    in effect no timeout, as before it existed, they never do within the run)."""
    import socket

    port = free_port_for(ctx)
    service = start_service(
        ctx["store"], port, {"HASHREC_REQUEST_READ_TIMEOUT_S": str(timeout_s), "HASHREC_POLL_INTERVAL_S": "0"}
    )
    subprocess.run(["prlimit", "--pid", str(service.pid), "--nofile=256:256"], check=True)
    idle: list[socket.socket] = []
    try:
        with Load(ctx["base"], ctx["users"], keepalive=False) as load:
            time.sleep(seconds / 3)
            for _ in range(300):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                except OSError:
                    break
            time.sleep(2.0 + 1.0)  # the read timeout, and a second to recover
            with load.lock:
                before = dict(load.outcomes)
            time.sleep(max(seconds / 3, 1.0))
        result = load.summary()
        after = {k: v - before.get(k, 0) for k, v in load.outcomes.items()}
        result["idle_sockets_opened"] = len(idle)
        result["outcomes_after_timeout"] = after
        return result
    finally:
        for sock in idle:
            sock.close()
        service.terminate()
        service.wait()


def free_port_for(ctx: dict) -> int:  # type: ignore[type-arg]
    """Each scenario gets a fresh port; the load's base URL follows it."""
    port = free_port()
    ctx["base"] = f"http://127.0.0.1:{port}"
    return port


def publish(store: ModelStore, data, seed: int) -> str:  # type: ignore[no-untyped-def]
    """Train a small MF model and publish it as the current version."""
    cfg = IndexConfig(
        encoder=EncoderConfig(name="mf", dim=32, epochs=3),
        quantizer=QuantizerConfig(bits=64),
        seed=seed,
        progress=False,
    )
    return str(build_index(data, store, cfg)["version"])


SCENARIOS = {
    "redis_killed_and_restarted": scenario_redis_restart,
    "redis_slow_2s": scenario_slow_redis,
    "damaged_versions_published": scenario_damaged_reloads,
    "sigterm_with_drain": scenario_sigterm_drain,
    "idle_sockets_low_fd_limit": scenario_idle_sockets,
    "idle_sockets_without_read_timeout": lambda ctx, seconds: scenario_idle_sockets(ctx, seconds, 3600.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/runs/reliability"))
    parser.add_argument("--seconds", type=float, default=9.0)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="hashrec-reliability-")
    data = generate_interactions(n_users=2000, n_items=3000, n_communities=10, seed=3)
    store_dir = Path(tmp) / "store"
    good = publish(ModelStore(store_dir), data, seed=1)
    ctx = {"tmp": tmp, "store": store_dir, "data": data, "users": [str(u) for u in data.user_ids]}
    results = {}
    for name, scenario in SCENARIOS.items():
        ModelStore(store_dir).promote(good)
        results[name] = scenario(ctx, args.seconds)
        print(name, json.dumps(results[name]), flush=True)
    meta = {
        **common.run_metadata(),
        "seconds_per_scenario": args.seconds,
    }
    commit = meta["commit"]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "scenarios": results}, indent=2))
    lines = [
        f"Machine: {meta['cpus']} CPUs, Python {meta['python']}, {meta['date']}, commit {commit}; "
        f"{args.seconds:g} s of load per scenario from 4 client threads.",
        "",
        "| scenario | sent | ok | failed | refused after stop | cached share | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['sent']} | {r['ok']} | {r['failed']} | {r['refused_after_stop']} | "
            f"{r['cached_share']} | {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |"
        )
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
