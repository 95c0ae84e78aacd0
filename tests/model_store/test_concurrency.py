"""Several processes publishing, promoting, rolling back and collecting garbage at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
from hashrec.model_store import ModelStore, StoreError

from tests.model_store.test_crash import assert_consistent

PER_PROCESS = 8


def _publish_many(root: str, seed: int, barrier, results) -> None:  # type: ignore[no-untyped-def]
    """Publish PER_PROCESS versions as fast as possible, after every process is ready."""
    store = ModelStore(root)
    rng = np.random.default_rng(seed)
    arrays = {"user_embeddings": rng.standard_normal((200, 32)).astype(np.float32)}
    barrier.wait()
    for step in range(PER_PROCESS):
        version = store.publish(arrays, {"blob.bin": rng.bytes(8192)}, bits=64, metrics={"seed": seed})
        results.put((seed, step, version))


def _churn_refs(root: str, barrier, rounds: int) -> None:  # type: ignore[no-untyped-def]
    """Promote, roll back, pin and gc while others publish."""
    store = ModelStore(root)
    barrier.wait()
    for step in range(rounds):
        try:
            versions = [m.version for m in store.list_versions()]
            if versions:
                store.promote(versions[step % len(versions)], "production")
            if step % 2:
                store.rollback()
            store.gc(keep=4)
        except StoreError:
            pass  # e.g. nothing to roll back to yet


def _run(processes) -> None:  # type: ignore[no-untyped-def]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0


def test_two_publishers_at_once_both_land_and_the_store_stays_consistent(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    _run([context.Process(target=_publish_many, args=(str(store.root), s, barrier, results)) for s in (1, 2)])
    published = [results.get(timeout=5) for _ in range(2 * PER_PROCESS)]
    names = [version for _, _, version in published]
    assert len(set(names)) == 2 * PER_PROCESS
    assert {m.version for m in store.list_versions()} == set(names)
    assert_consistent(store)
    assert store.current() in names
    history = store.history()
    assert sorted(e.version for e in history if e.action == "publish") == sorted(names)
    assert history[-1].version == store.current()
    for seed in (1, 2):  # each publisher's versions are in its own order in the shared log
        own = [e.version for e in history if e.version in {v for s, _, v in published if s == seed}]
        assert own == [v for s, _, v in sorted(published) if s == seed]


def test_gc_and_promote_while_publishing_never_leave_a_dangling_ref(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(3), context.Queue()
    root = str(store.root)
    _run(
        [
            context.Process(target=_publish_many, args=(root, 1, barrier, results)),
            context.Process(target=_publish_many, args=(root, 2, barrier, results)),
            context.Process(target=_churn_refs, args=(root, barrier, 12)),
        ]
    )
    assert_consistent(store)
    store.gc(keep=0)
    assert_consistent(store)
    assert store.current() is not None
