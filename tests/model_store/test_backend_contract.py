"""One contract for every store Backend: the local directory, fsspec's in-memory filesystem and
S3 (a moto server on 127.0.0.1; skipped where moto or s3fs is not installed)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from hashrec.model_store import StoreError
from hashrec.model_store.backends import Backend, FsspecBackend, LocalBackend

from tests.model_store.conftest import BUCKET


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        yield LocalBackend(tmp_path / "store")
        return
    pytest.importorskip("fsspec", reason="fsspec is not installed")
    if request.param == "memory":
        made = FsspecBackend(f"memory://contract-{uuid.uuid4().hex[:8]}/store")
    else:
        endpoint = request.getfixturevalue("endpoint")
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        made = FsspecBackend(f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/store", options)
    yield made
    made.remove_tree("")


class TestBackendContract:
    """What ModelStore relies on from any Backend."""

    def test_put_read_replace(self, backend: Backend):
        backend.put_bytes("a/b.bin", b"one")
        assert backend.read_bytes("a/b.bin") == b"one" and backend.exists("a/b.bin")
        backend.put_bytes("a/b.bin", b"two!")
        assert backend.read_bytes("a/b.bin") == b"two!"
        with pytest.raises(FileNotFoundError):
            backend.read_bytes("a/missing.bin")
        assert not backend.exists("a/missing.bin")

    def test_listings_sizes_and_checksums(self, backend: Backend):
        backend.put_many({"v/x.npy": b"x" * 10, "v/y.json": b"{}", "v/sub/z": b"z"})
        assert sorted(backend.list_names("v")) == ["sub", "x.npy", "y.json"]
        assert backend.list_names("nothing-here") == []
        assert backend.sizes("v") == {"x.npy": 10, "y.json": 2}
        expected = hashlib.sha256(b"x" * 10).hexdigest()
        assert backend.sha256("v/x.npy") == backend.sha256("v/x.npy", 10) == expected
        assert backend.sha256_many({"v/x.npy": 10, "v/y.json": 2}) == {
            "v/x.npy": expected,
            "v/y.json": hashlib.sha256(b"{}").hexdigest(),
        }

    def test_append_record_keeps_every_line(self, backend: Backend):
        with backend.lock():
            for n in range(3):
                backend.append_record("log.jsonl", f"{n}\n".encode())
        assert backend.read_bytes("log.jsonl") == b"0\n1\n2\n"

    def test_remove_and_remove_tree(self, backend: Backend):
        backend.put_many({"t/a": b"1", "t/deep/b": b"2", "keep": b"3"})
        backend.remove("t/a")
        backend.remove("t/a")  # removing what is gone is not an error
        assert not backend.exists("t/a") and backend.exists("t/deep/b")
        backend.remove_tree("t")
        assert not backend.exists("t/deep/b") and backend.read_bytes("keep") == b"3"

    def test_fetch_copies_to_a_local_file(self, backend: Backend, tmp_path):
        backend.put_bytes("f/data.bin", b"\x00\x01payload")
        dest = tmp_path / "fetched.bin"
        backend.fetch("f/data.bin", dest)
        assert dest.read_bytes() == b"\x00\x01payload"

    def test_newest_mtime(self, backend: Backend):
        assert backend.newest_mtime("empty") is None
        backend.put_bytes("m/one", b"1")
        stamp = backend.newest_mtime("m")
        assert stamp is not None and stamp > 0

    def test_the_lock_is_reentrant(self, backend: Backend):
        with backend.lock(), backend.lock():
            backend.put_bytes("locked", b"ok")
        assert backend.read_bytes("locked") == b"ok"

    def test_read_small_reads_a_small_object_and_refuses_a_large_one(self, backend: Backend):
        backend.put_bytes("meta/small", b"x" * 10)
        assert backend.read_small("meta/small", 10) == b"x" * 10
        with pytest.raises(StoreError, match="limit"):
            backend.read_small("meta/small", 9)
        with pytest.raises(FileNotFoundError):
            backend.read_small("meta/missing", 10)
