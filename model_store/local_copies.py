"""Local copies of remote versions, so the service can mmap arrays from local disk."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from hashrec.model_store.staging import StagingDir

if TYPE_CHECKING:
    from hashrec.model_store.backends import Backend

CACHE_ENV = "HASHREC_STORE_CACHE"


def default_cache_dir(url: str) -> Path:
    """``$HASHREC_STORE_CACHE/<hash>``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, ``/hashrec/<hash>``.

    ``<hash>`` is the first 16 hex digits of the URL's sha256, so two stores never share a cache.
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser() / digest
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hashrec" / digest


def fetch_version(backend: Backend, version: str, file_names: list[str], cache_root: Path) -> Path:
    """Download a version's files into ``cache_root/versions/<version>`` and return that folder.

    Files land in a staging folder first and the folder is renamed into place, so a reader never
    sees a half-downloaded copy; when another process finished the same download first, its copy
    is kept. The caller verifies the copy (``ModelStore(cache_root).open(version)``).
    """
    target = cache_root / "versions" / version
    with StagingDir(cache_root / ".staging", version) as staging:
        for name in file_names:
            backend.fetch(f"versions/{version}/{name}", staging.path / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging.path, target)
            staging.committed = True
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return target
