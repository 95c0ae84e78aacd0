"""The S3 backend against a real S3-compatible server on 127.0.0.1 (moto's server mode)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from hashrec.loadtest.id_pool import id_strings

pytest.importorskip("s3fs", reason="s3fs is not installed: the S3 backend cannot be tested")
pytest.importorskip(
    "moto.server", reason="moto[server] is not installed: no local S3-compatible server to test against"
)

from hashrec.model_store import CorruptVersion, ModelStore, StoreError, VersionNotFound
from hashrec.model_store.backends import FsspecBackend
from hashrec.retrieval.model import ServingModel

from tests.conftest import planted_arrays, publish_arrays
from tests.model_store.conftest import BUCKET, CREDENTIALS


@pytest.fixture
def options(endpoint):
    return {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}


@pytest.fixture
def url():
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/store"


@pytest.fixture
def s3store(url, options, tmp_path) -> ModelStore:
    return ModelStore(url, storage_options=options, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def tiny():
    return planted_arrays(n_users=20, n_items=30, dim=4)


def test_publish_list_promote_and_rollback_on_s3(s3store, tiny, url, options, tmp_path):
    assert s3store.is_remote and s3store.current() is None and s3store.list_versions() == []
    v1 = publish_arrays(s3store, tiny, metrics={"recall@20": 0.1})
    v2 = publish_arrays(s3store, tiny, metrics={"recall@20": 0.2}, make_current=False)
    assert [m.version for m in s3store.list_versions()] == [v1, v2]
    assert s3store.current() == v1
    assert s3store.promote(v2) == v1
    s3store.promote(v1, "production")
    # another replica (another process or host) sees every change at once
    replica = ModelStore(url, storage_options=options, cache_dir=tmp_path / "replica-cache")
    assert replica.aliases() == {"current": v2, "production": v1}
    assert replica.rollback() == v1
    assert s3store.current() == v1
    assert [e.action for e in s3store.history()] == ["publish", "promote", "rollback"]
    assert [d.path for d in s3store.diff(v1, v2)] == ["metrics.recall@20"]
    s3store.verify(v2)


def test_open_downloads_into_the_cache_verifies_and_serves(s3store, tiny, tmp_path, monkeypatch):
    version = publish_arrays(s3store, tiny)
    artifact = s3store.open()
    assert artifact.version == version
    assert artifact.path == tmp_path / "cache" / "versions" / version
    assert isinstance(artifact.array("user_embeddings"), np.memmap)
    for name, expected in tiny.items():
        np.testing.assert_array_equal(artifact.array(name), expected)
    model = ServingModel.from_artifact(artifact)
    assert model.n_items == 30
    fetched = []
    monkeypatch.setattr(s3store.backend, "fetch", lambda key, dest: fetched.append(key))
    assert s3store.open(version).path == artifact.path  # the verified cached copy, no download
    assert fetched == []
    assert not list((tmp_path / "cache" / ".staging").iterdir())


def test_a_damaged_cached_copy_is_fetched_again(s3store, tiny):
    version = publish_arrays(s3store, tiny)
    path = s3store.open().path / "item_codes.npy"
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    artifact = s3store.open()
    assert artifact.version == version
    np.testing.assert_array_equal(artifact.array("item_codes"), tiny["item_codes"])


def test_a_corrupt_object_is_named_by_verify_and_refused_by_open(s3store, tiny):
    version = publish_arrays(s3store, tiny)
    key = f"versions/{version}/item_embeddings.npy"
    data = bytearray(s3store.backend.read_bytes(key))
    data[-2] ^= 0xFF
    s3store.backend.put_bytes(key, bytes(data))
    with pytest.raises(CorruptVersion, match="item_embeddings.npy fails its sha256 check"):
        s3store.verify(version)
    with pytest.raises(CorruptVersion, match="item_embeddings.npy"):
        s3store.open()
    assert not (s3store.cache_dir / "versions" / version).exists()


def test_an_upload_without_manifest_is_invisible_and_collected_when_stale(s3store, tiny):
    good = publish_arrays(s3store, tiny)
    partial = "v20200101-000000-abcdef"
    s3store.backend.put_bytes(f"versions/{partial}/user_ids.npy", b"half an upload")
    assert [m.version for m in s3store.list_versions()] == [good]
    with pytest.raises(VersionNotFound):
        s3store.open(partial)
    with pytest.raises(VersionNotFound):
        s3store.promote(partial)
    assert s3store.gc(keep=1).incomplete == []  # may still be uploading
    assert s3store.gc(keep=1, stale_after_s=0).incomplete == [partial]
    assert s3store.backend.list_names("versions") == [good]


def test_the_lock_object_serializes_writers_and_an_expired_lease_is_broken(url, options):
    holder = FsspecBackend(url, options, lock_timeout=0.3)
    waiter = FsspecBackend(url, options, lock_timeout=0.3)
    with holder.lock(), pytest.raises(StoreError, match="is locked by"), waiter.lock():
        pass
    with waiter.lock():  # released
        pass
    stale = {"owner": "dead", "host": "h", "pid": 1, "expires": 0}
    holder.put_bytes(".lock", json.dumps(stale).encode())
    with waiter.lock():
        assert json.loads(waiter.read_bytes(".lock"))["owner"] != "dead"
    assert not waiter.exists(".lock")


def test_store_cli_on_s3_with_aws_environment(endpoint, url, tiny, tmp_path):
    from typer.testing import CliRunner

    from hashrec.cli import app

    env = {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint, "HASHREC_STORE_CACHE": str(tmp_path / "c")}
    store = ModelStore(url, storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"})
    v1 = publish_arrays(store, tiny)
    v2 = publish_arrays(store, tiny, make_current=False)
    runner = CliRunner(env=env)
    listed = runner.invoke(app, ["store", "list", "--store", url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [row["version"] for row in json.loads(listed.stdout)] == [v1, v2]
    promoted = runner.invoke(app, ["store", "promote", v2, "--alias", "production", "--store", url])
    assert promoted.exit_code == 0 and f"production: (unset) -> {v2}" in promoted.stdout
    verified = runner.invoke(app, ["store", "verify", "--store", url])
    assert verified.exit_code == 0 and verified.stdout.count("ok ") == 2


def test_hashrec_serve_on_an_s3_store_answers_from_it(endpoint, url, tiny, tmp_path, monkeypatch):
    """`hashrec serve --store s3://...` hands the URL to its workers, whose app serves that store."""
    import uvicorn
    from fastapi.testclient import TestClient
    from hashrec.service.app import create_app_from_env
    from typer.testing import CliRunner

    from hashrec.cli import app

    store = ModelStore(url, storage_options={"endpoint_url": endpoint, "key": "testing", "secret": "testing"})
    version = publish_arrays(store, tiny)
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint, "HASHREC_STORE_CACHE": str(tmp_path / "c")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("HASHREC_STORE", "HASHREC_LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)  # restored afterwards; serve writes these
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # the workers' env is what counts
    result = CliRunner().invoke(app, ["serve", "--store", url, "--workers", "1"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("HASHREC_POLL_INTERVAL_S", "0")
    with TestClient(create_app_from_env()) as client:
        assert client.get("/readyz").status_code == 200
        user = id_strings(tiny["user_ids"][:1])[0]
        answer = client.post("/v1/recommend", json={"user_id": user, "k": 3})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version and len(answer.json()["items"]) == 3
