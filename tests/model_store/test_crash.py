"""Crash safety: a publisher killed with SIGKILL at random points never leaves the store inconsistent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
from hashrec.model_store import ModelStore, StoreError

KILLS = 30


def _publish_forever(root: str, seed: int) -> None:
    """Publish, roll back, promote and gc in a loop until killed."""
    store = ModelStore(root)
    rng = np.random.default_rng(seed)
    arrays = {
        "user_embeddings": rng.standard_normal((64, 16)).astype(np.float32),
        "item_ids": np.array([f"i{i}" for i in range(50)]),
    }
    for step in range(10_000):
        store.publish(arrays, {"blob.bin": rng.bytes(4096)}, bits=64, metrics={"step": step, "seed": seed})
        try:
            if step % 3 == 1:
                store.rollback()
            if step % 5 == 2:
                store.promote(store.list_versions()[-1].version, "production")
            if step % 4 == 3:
                store.gc(keep=3)
        except StoreError:
            pass


def assert_consistent(store: ModelStore) -> None:
    """Every listed version verifies, refs name complete versions, nothing partial is in versions/."""
    listed = {m.version for m in store.list_versions()}
    assert set(os.listdir(store.versions_dir)) == listed, "a partial version is in versions/"
    for version in listed:
        store.verify(version)
    current = store.current()
    if listed:
        assert current in listed, f"current names {current!r}, which is not a complete version"
        assert store.open().version == current
    for alias, version in store.aliases().items():
        assert version in listed, f"{alias} names {version!r}, which is not a complete version"
    for event in store.history():
        assert event.alias == "current"


def test_sigkill_at_random_points_leaves_a_consistent_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    context = multiprocessing.get_context("fork")
    rng = np.random.default_rng(1234)
    leftovers_seen = 0
    started = time.monotonic()
    for kill in range(KILLS):
        process = context.Process(target=_publish_forever, args=(str(store.root), kill), daemon=True)
        process.start()
        time.sleep(float(rng.uniform(0.01, 0.12)))
        os.kill(process.pid, signal.SIGKILL)
        process.join(5)
        assert process.exitcode == -signal.SIGKILL
        staging = store.root / ".staging"
        leftovers_seen += any(p.is_dir() for p in staging.iterdir()) if staging.is_dir() else 0
        assert_consistent(store)
    assert time.monotonic() - started < 30
    assert leftovers_seen > 0, "no kill landed while a version was being staged"
    assert len(store.list_versions()) > 0
    report = store.gc(keep=2)
    assert_consistent(store)
    assert list((store.root / ".staging").iterdir()) == []
    assert not [p for p in (store.root / "refs").iterdir() if p.name.startswith(".")]
    assert len(store.list_versions()) >= 2
    assert all(name not in {m.version for m in store.list_versions()} for name in report.incomplete)
