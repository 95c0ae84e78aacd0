"""Store locations, staging sweeps, and the remote code path on fsspec's in-memory filesystem."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from hashrec.model_store import ModelStore, StoreError
from hashrec.model_store.backends import parse_location
from hashrec.model_store.local_copies import default_cache_dir
from hashrec.model_store.staging import StagingDir, sweep_staging

from tests.conftest import planted_arrays, publish_arrays


def test_store_locations_are_parsed():
    assert parse_location("s3://bucket/prefix/") == ("s3://bucket/prefix", None)
    # pathlib collapses "s3://" to "s3:/": Settings(store=Path(...)) must still mean S3
    assert parse_location(Path("s3://bucket/prefix")) == ("s3://bucket/prefix", None)
    assert parse_location("file:///tmp/x") == ("/tmp/x", Path("/tmp/x"))
    assert parse_location(Path("relative/dir"))[1] == Path("relative/dir")
    with pytest.raises(StoreError, match="unsupported store URL"):
        parse_location("ftp://host/x")
    with pytest.raises(StoreError, match="names no bucket"):
        parse_location("s3://")
    # a scheme is case-insensitive: S3:// must not become a local directory named "S3:"
    assert parse_location("S3://bucket/prefix") == ("s3://bucket/prefix", None)
    assert parse_location(Path("S3://bucket/prefix")) == ("s3://bucket/prefix", None)
    for empty in ("", "  "):
        with pytest.raises(StoreError, match="empty"):  # not the current directory
            parse_location(empty)


def test_default_cache_dir_is_per_url(monkeypatch, tmp_path):
    monkeypatch.setenv("HASHREC_STORE_CACHE", str(tmp_path))
    a, b = default_cache_dir("s3://b/one"), default_cache_dir("s3://b/two")
    assert a.parent == b.parent == tmp_path and a != b
    monkeypatch.delenv("HASHREC_STORE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir("s3://b/one").parent == tmp_path / "xdg" / "hashrec"


def test_sweep_removes_dead_writers_only(tmp_path):
    staging = tmp_path / ".staging"
    with StagingDir(staging, "vlive") as live:
        (live.path / "part.npy").write_bytes(b"x")
        dead = staging / "vdead.0000"
        dead.mkdir()
        (staging / "vdead.0000.lock").touch()
        (staging / "vstray.1111.lock").touch()  # a writer killed before it made its folder
        assert sweep_staging(staging, dry_run=True) == ["vdead.0000"]
        assert dead.exists()
        assert sweep_staging(staging) == ["vdead.0000"]
        assert sorted(p.name for p in staging.iterdir()) == [live.name, f"{live.name}.lock"]
    assert list(staging.iterdir()) == []


def test_gc_leaves_a_version_being_staged_alone(tmp_path):
    store = ModelStore(tmp_path)
    publish_arrays(store, planted_arrays(n_users=10, n_items=20, dim=4))
    with StagingDir(tmp_path / ".staging", "vbusy") as busy:
        assert store.gc(keep=0).incomplete == []
        assert busy.path.is_dir()


@pytest.fixture
def memory_store(tmp_path):
    pytest.importorskip("fsspec", reason="fsspec is not installed")
    url = f"memory://hashrec-{uuid.uuid4().hex[:8]}/store"
    store = ModelStore(url, cache_dir=tmp_path / "cache")
    yield store
    store.backend.remove_tree("")


def test_remote_code_path_on_an_in_memory_filesystem(memory_store, tmp_path):
    tiny = planted_arrays(n_users=10, n_items=20, dim=4)
    v1 = publish_arrays(memory_store, tiny)
    v2 = publish_arrays(memory_store, tiny, make_current=False)
    assert memory_store.is_remote and [m.version for m in memory_store.list_versions()] == [v1, v2]
    memory_store.promote(v2, "production")
    assert memory_store.aliases() == {"current": v1, "production": v2}
    artifact = memory_store.open(v2)
    assert artifact.path == tmp_path / "cache" / "versions" / v2
    np.testing.assert_array_equal(artifact.array("item_codes"), tiny["item_codes"])
    assert memory_store.gc(keep=0).deleted == []
    memory_store.remove_alias("production")
    assert memory_store.gc(keep=0).deleted == [v2]
    assert not (tmp_path / "cache" / "versions" / v2).exists()
    assert memory_store.backend.list_names("versions") == [v1]


def test_an_unreachable_s3_endpoint_is_a_store_error_not_a_crash():
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    options = {
        "endpoint_url": "http://127.0.0.1:9",
        "key": "k",
        "secret": "s",
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = ModelStore("s3://bucket/prefix", storage_options=options)
    with pytest.raises(StoreError, match="store s3://bucket/prefix: EndpointConnectionError"):
        store.current()  # what the service polls: it logs StoreError and keeps serving
