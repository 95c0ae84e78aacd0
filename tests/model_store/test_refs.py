"""Aliases, promote, rollback, history, pins, retention (gc, delete) and diff."""

from __future__ import annotations

import json

import pytest
from hashrec.model_store import CorruptVersion, ModelStore, StoreError, VersionNotFound
from hashrec.model_store.refs import RefEvent, parse_log, replay, rollback_target

from tests.conftest import planted_arrays, publish_arrays


@pytest.fixture(scope="module")
def tiny():
    return planted_arrays(n_users=20, n_items=30, dim=4)


def _publish(store: ModelStore, tiny, n: int, **kwargs) -> list[str]:
    return [publish_arrays(store, tiny, metrics={"recall@20": 0.1 * i}, **kwargs) for i in range(n)]


def test_aliases_are_listed_and_resolved(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2 = _publish(store, tiny, 2)
    assert store.promote(v1, "production") is None
    store.set_alias("staging", v2)
    assert store.aliases() == {"current": v2, "production": v1, "staging": v2}
    assert store.resolve("production") == v1 and store.resolve(v2) == v2
    assert (tmp_path / "refs" / "production").read_text() == f"{v1}\n"
    with pytest.raises(VersionNotFound, match="no version or alias 'nope'"):
        store.resolve("nope")
    assert store.remove_alias("staging") == v2
    assert "staging" not in store.aliases()
    with pytest.raises(StoreError, match="cannot be removed"):
        store.remove_alias("current")


@pytest.mark.parametrize("alias", ["../current", "a/b", "", ".hidden", "x" * 200, "a..b"])
def test_unsafe_alias_names_are_refused(store, alias):
    with pytest.raises(StoreError, match="invalid alias name"):
        store.promote(store.current(), alias)


def test_promote_refuses_a_damaged_version_and_changes_nothing(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2 = _publish(store, tiny, 2)
    store.promote(v1)
    target = store.versions_dir / v2 / "user_embeddings.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match="user_embeddings.npy"):
        store.promote(v2, "production")
    assert store.aliases() == {"current": v1}


def test_rollback_walks_back_through_the_history(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2, v3 = _publish(store, tiny, 3)
    assert store.current() == v3
    assert store.rollback() == v2 and store.current() == v2
    assert store.rollback() == v1 and store.current() == v1
    with pytest.raises(StoreError, match="no earlier version"):
        store.rollback()
    actions = [(e.action, e.previous, e.version) for e in store.history()]
    assert actions == [
        ("publish", None, v1),
        ("publish", v1, v2),
        ("publish", v2, v3),
        ("rollback", v3, v2),
        ("rollback", v2, v1),
    ]


def test_rollback_after_promoting_an_older_version_returns_to_the_newer(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2 = _publish(store, tiny, 2)
    store.promote(v1)
    assert store.rollback() == v2


def test_rollback_of_a_named_alias_and_of_an_unset_one(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2 = _publish(store, tiny, 2, make_current=False)
    store.promote(v1, "production")
    store.promote(v2, "production")
    assert store.rollback("production") == v1
    assert store.current() is None
    with pytest.raises(VersionNotFound, match="not set"):
        store.rollback()


def test_rollback_skips_versions_deleted_since(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2, v3 = _publish(store, tiny, 3)
    store.pin(v1)
    store.promote(v3)  # history: v1, v2, v3, v3
    # v2 is the rollback target, so protected; remove it behind the store's back
    (store.versions_dir / v2 / "manifest.json").unlink()
    assert store.rollback() == v1


def test_the_ref_wins_over_a_log_that_lags_it():
    def event(action, version):
        return RefEvent("t", "current", action, version, None, "me")

    events = [event("publish", "a"), event("publish", "b")]
    assert replay(events) == ["a", "b"]
    # a crash after writing ref=c but before logging it: the rollback goes to b, not a
    assert rollback_target(events, "c", lambda _: True) == "b"
    # a crash after a rollback to a was written but not logged: the next rollback goes nowhere
    assert rollback_target(events, "a", lambda _: True) is None


def test_a_torn_log_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2 = _publish(store, tiny, 2)
    log = tmp_path / "logs" / "current.log"
    with log.open("ab") as handle:
        handle.write(b'{"at": "2026-01-01", "alias": "cur')
    assert [e.version for e in store.history()] == [v1, v2]
    store.promote(v1)
    assert [e.version for e in store.history()] == [v1, v2, v1]
    assert len(parse_log(log.read_bytes())) == 3


def test_pins_protect_from_gc_and_delete(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2, v3, v4 = _publish(store, tiny, 4)
    store.pin(v1, note="paper baseline")
    assert store.pins()[v1]["note"] == "paper baseline"
    with pytest.raises(StoreError, match=f"refusing to delete {v1}: it is pinned"):
        store.delete(v1)
    report = store.gc(keep=1)
    # v4 current and newest, v3 the rollback target, v1 pinned; v2 goes
    assert report.deleted == [v2]
    assert report.kept[v1] == ["pinned"]
    assert report.kept[v3] == ["rollback target of current"]
    assert report.kept[v4] == ["current", "newest 1"]
    assert [m.version for m in store.list_versions()] == [v1, v3, v4]
    assert store.unpin(v1) is True and store.unpin(v1) is False
    assert store.gc(keep=0).deleted == [v1]


def test_gc_never_deletes_current_or_aliased_and_dry_run_deletes_nothing(tmp_path, tiny):
    store = ModelStore(tmp_path)
    versions = _publish(store, tiny, 5)
    store.promote(versions[0], "production")
    store.promote(versions[1], "staging")
    dry = store.gc(keep=0, dry_run=True)
    assert dry.dry_run and dry.deleted == [versions[2]]
    assert len(store.list_versions()) == 5
    report = store.gc(keep=0)
    assert report.deleted == [versions[2]]
    assert {m.version for m in store.list_versions()} == {versions[0], versions[1], versions[3], versions[4]}
    with pytest.raises(StoreError, match="keep must be >= 0"):
        store.gc(keep=-1)


def test_delete_refuses_current_and_aliases_and_removes_others(tmp_path, tiny):
    store = ModelStore(tmp_path)
    v1, v2, v3, v4 = _publish(store, tiny, 4)
    store.promote(v2, "staging")
    with pytest.raises(StoreError, match="it is current"):
        store.delete(v4)
    with pytest.raises(StoreError, match="alias staging"):
        store.delete(v2)
    with pytest.raises(StoreError, match="rollback target of current"):
        store.delete(v3)
    store.delete(v1)
    assert not (store.versions_dir / v1).exists()
    assert list((tmp_path / ".staging").iterdir()) == []
    with pytest.raises(VersionNotFound):
        store.delete(v1)


def test_diff_reports_config_and_metric_changes(tmp_path, tiny):
    store = ModelStore(tmp_path)
    a = publish_arrays(store, tiny, config={"epochs": 2, "lr": 0.01}, metrics={"served": {"recall@20": 0.1}})
    other = planted_arrays(n_users=20, n_items=30, dim=4, seed=1)
    b = publish_arrays(
        store, other, config={"epochs": 3, "lr": 0.01}, metrics={"served": {"recall@20": 0.15}}
    )
    changes = {change.path: change for change in store.diff(a, b)}
    assert changes["config.epochs"].old == 2 and changes["config.epochs"].new == 3
    assert "config.lr" not in changes
    assert changes["metrics.served.recall@20"].delta == pytest.approx(0.05)
    assert "files.user_embeddings.npy" in changes
    assert store.diff(a, a) == []


def test_every_version_carries_a_manifest_checksum(store):
    version_dir = store.versions_dir / store.current()
    line = (version_dir / "manifest.sha256").read_text()
    digest, name = line.split()
    assert name == "manifest.json" and len(digest) == 64
    json.loads((version_dir / "manifest.json").read_text())


def test_a_manifest_edit_that_keeps_valid_json_is_caught(store):
    path = store.versions_dir / store.current() / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"] = {"recall@20": 0.99}
    path.write_text(json.dumps(manifest, indent=2))
    with pytest.raises(CorruptVersion, match="manifest.json fails its sha256 check"):
        store.verify(store.current())


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sha256"])
def test_reserved_file_names_are_refused(tmp_path, tiny, name):
    with pytest.raises(StoreError, match="reserved"):
        ModelStore(tmp_path).publish(tiny, {name: b"x"}, bits=64)
