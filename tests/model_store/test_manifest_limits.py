"""A manifest is read only as a small regular file: a FIFO, a link to /dev/zero or a huge file is
refused with a reason at once, never a hang or an unbounded read (issue 24)."""

from __future__ import annotations

import os
import threading

import pytest
from hashrec.model_store import ModelStore, StoreError

from tests.conftest import planted_arrays, publish_arrays


def _replace_manifest(store: ModelStore, version: str, how: str) -> None:
    path = store.versions_dir / version / "manifest.json"
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    else:  # 60 MB of valid-looking JSON padding
        path.write_bytes(b'{"pad": "' + b" " * (60 << 20) + b'"}')


@pytest.mark.parametrize("how", ["fifo", "dev-zero", "huge"])
def test_an_unusual_manifest_file_is_refused_at_once(tmp_path, how):
    store = ModelStore(tmp_path / "store")
    version = publish_arrays(store, planted_arrays(n_users=10, n_items=20))
    _replace_manifest(store, version, how)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            store.open(version)
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), f"{how}: reading the manifest hangs"
    assert isinstance(outcome[0], StoreError), outcome
    assert ("not a regular file" if how != "huge" else "limit") in str(outcome[0])
