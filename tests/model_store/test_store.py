"""ModelStore: atomic publish, verification, refusal of damaged or newer versions."""

from __future__ import annotations

import json

import hashrec.model_store.store as store_module
import numpy as np
import pytest
from hashrec.model_store import (
    FORMAT_VERSION,
    CorruptVersion,
    ModelStore,
    StoreError,
    UnsupportedFormat,
    VersionNotFound,
)
from hashrec.retrieval.schema import check_recommender

from tests.conftest import publish_arrays


def test_round_trip_every_array(tmp_path, arrays):
    store = ModelStore(tmp_path)
    version = publish_arrays(store, arrays, metrics={"recall@20": 0.5})
    artifact = store.open()
    assert artifact.version == version == store.current()
    assert artifact.manifest.format_version == FORMAT_VERSION
    assert artifact.manifest.metrics == {"recall@20": 0.5}
    for name, expected in arrays.items():
        loaded = artifact.array(name)
        assert loaded.dtype == expected.dtype and np.array_equal(loaded, expected), name
    check_recommender(artifact)


def test_new_version_becomes_current_and_is_listed(tmp_path, arrays):
    store = ModelStore(tmp_path)
    first = publish_arrays(store, arrays)
    second = publish_arrays(store, arrays)
    assert first != second
    assert store.current() == second
    assert [m.version for m in store.list_versions()] == [first, second]


def test_empty_store_has_no_current(tmp_path):
    store = ModelStore(tmp_path / "nothing")
    assert store.current() is None and store.list_versions() == []
    with pytest.raises(VersionNotFound, match="no current version"):
        store.open()


@pytest.mark.parametrize("target", ["item_embeddings.npy", "manifest.json"])
def test_damaged_file_is_refused_by_name(store, target):
    path = store.versions_dir / store.current() / target
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptVersion, match="item_embeddings|manifest"):
        store.open()


def test_missing_file_is_refused(store):
    (store.versions_dir / store.current() / "user_codes.npy").unlink()
    with pytest.raises(CorruptVersion, match="user_codes.npy is missing"):
        store.verify(store.current())


def test_newer_format_is_refused_with_upgrade_message(store):
    manifest_path = store.versions_dir / store.current() / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UnsupportedFormat, match="upgrade hashrec"):
        store.open()


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", "", ".hidden", "x" * 200])
def test_unsafe_version_names_are_refused(store, name):
    with pytest.raises(StoreError, match="invalid"):
        store.open(name)


def test_failed_publish_leaves_nothing_behind(tmp_path, arrays, monkeypatch):
    store = ModelStore(tmp_path)
    good = publish_arrays(store, arrays)
    calls = {"n": 0}
    real = store_module._write_durable

    def failing(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(store_module, "_write_durable", failing)
    with pytest.raises(OSError, match="disk full"):
        publish_arrays(store, arrays)
    assert [m.version for m in store.list_versions()] == [good]
    assert store.current() == good
    assert list((tmp_path / ".staging").iterdir()) == []


def test_arrays_load_without_pickle(store):
    artifact = store.open()
    ids = artifact.array("user_ids")
    assert ids.dtype.kind == "S"  # UTF-8 bytes (format 2), loadable with allow_pickle=False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"item_embeddings_i8": "codes"}, "come together"),
        ({"item_embeddings_i8": "codes", "item_embeddings_i8_scale": "short"}, "do not match"),
        ({"item_embeddings_f16": "float32"}, "item_embeddings_f16 is float32"),
    ],
)
def test_optional_rerank_arrays_are_checked(tmp_path, arrays, extra, message):
    items = arrays["item_embeddings"]
    made = {
        "codes": np.zeros(items.shape, np.int8),
        "short": np.ones(items.shape[1] - 1, np.float32),
        "float32": items.astype(np.float32),
    }
    store = ModelStore(tmp_path)
    publish_arrays(store, {**arrays, **{name: made[kind] for name, kind in extra.items()}})
    with pytest.raises(CorruptVersion, match=message):
        check_recommender(store.open())
