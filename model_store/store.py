"""A local-directory model store: immutable versions, an atomically replaced current pointer.

Layout (see FORMAT.md)::

    ROOT/versions/<version>/manifest.json, *.npy, *.faissindex
    ROOT/refs/current          text file holding the current version name
    ROOT/.staging/             versions being written; never read
    ROOT/.lock                 serializes publishers
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock
from pydantic import ValidationError

from model_store.errors import CorruptVersion, StoreError, UnsupportedFormat, VersionNotFound
from model_store.manifest import FORMAT_VERSION, MANIFEST_NAME, FileEntry, Manifest

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HASH_CHUNK = 1 << 20


def check_name(name: str, what: str = "version") -> str:
    """Return ``name`` if it is a safe single path component, else raise StoreError."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise StoreError(f"invalid {what} name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    """Write bytes and fsync them."""
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (write a sibling, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class Artifact:
    """A verified version on local disk.

    Parameters
    ----------
    path : Path
        The version directory.
    manifest : Manifest
        Its parsed manifest; every file in it matched its checksum when opened.
    """

    path: Path
    manifest: Manifest

    @property
    def version(self) -> str:
        return self.manifest.version

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """Load array ``name`` (without ``.npy``), memory-mapped by default, never unpickled."""
        file_name = f"{name}.npy"
        if file_name not in self.manifest.files:
            raise CorruptVersion(f"version {self.version} has no array {name!r}")
        return np.load(self.path / file_name, mmap_mode="r" if mmap else None, allow_pickle=False)

    def has(self, file_name: str) -> bool:
        return file_name in self.manifest.files

    def file_path(self, file_name: str) -> Path:
        """Path of a non-array file listed in the manifest."""
        if file_name not in self.manifest.files:
            raise CorruptVersion(f"version {self.version} has no file {file_name!r}")
        return self.path / file_name


class ModelStore:
    """Versioned artifacts in a local directory.

    Parameters
    ----------
    root : str or Path
        Store directory; created on first publish.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # ---- layout -------------------------------------------------------------------------
    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def refs_dir(self) -> Path:
        return self.root / "refs"

    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=60)

    # ---- publishing ---------------------------------------------------------------------
    def publish(
        self,
        arrays: Mapping[str, np.ndarray],
        blobs: Mapping[str, bytes] | None = None,
        *,
        bits: int,
        dataset: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        libraries: Mapping[str, str] | None = None,
        make_current: bool = True,
    ) -> str:
        """Write a new version atomically and return its generated name.

        Files are written and fsynced into a staging directory, re-hashed from disk,
        then the directory is renamed into ``versions/``; only after that is the
        current pointer replaced. A crash at any point leaves either no new version
        or a complete one.
        """
        blobs = blobs or {}
        for name in list(arrays) + list(blobs):
            check_name(name, "file")
        version = f"v{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        staging_root = self.root / ".staging"
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=staging_root, prefix=f"{version}."))
        try:
            written: dict[str, str] = {}
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
                data = buffer.getvalue()
                _write_durable(staging / f"{name}.npy", data)
                written[f"{name}.npy"] = hashlib.sha256(data).hexdigest()
            for name, data in blobs.items():
                _write_durable(staging / name, data)
                written[name] = hashlib.sha256(data).hexdigest()
            files = {}
            for file_name, expected in written.items():
                path = staging / file_name
                if sha256_file(path) != expected:
                    raise StoreError(f"{file_name} changed on disk while publishing")
                files[file_name] = FileEntry(sha256=expected, size=path.stat().st_size)
            manifest = Manifest(
                format_version=FORMAT_VERSION,
                version=version,
                created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                dataset=dict(dataset or {}),
                config=dict(config or {}),
                metrics=dict(metrics or {}),
                bits=bits,
                libraries=dict(libraries or {}),
                files=files,
            )
            _write_durable(staging / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode())
            _fsync_dir(staging)
            with self._lock():
                self.versions_dir.mkdir(exist_ok=True)
                os.rename(staging, self.versions_dir / version)
                _fsync_dir(self.versions_dir)
                if make_current:
                    self._set_ref("current", version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return version

    def _set_ref(self, ref: str, version: str) -> None:
        self.refs_dir.mkdir(exist_ok=True)
        _atomic_write_text(self.refs_dir / check_name(ref, "alias"), version + "\n")

    def set_current(self, version: str) -> None:
        """Point ``current`` at an existing, verified version."""
        with self._lock():
            self.verify(version)
            self._set_ref("current", version)

    # ---- reading ------------------------------------------------------------------------
    def current(self) -> str | None:
        """Name of the current version, or None when nothing was published."""
        ref = self.refs_dir / "current"
        try:
            name = ref.read_text().strip()
        except FileNotFoundError:
            return None
        return check_name(name)

    def list_versions(self) -> list[Manifest]:
        """Manifests of every complete version, oldest first; unreadable ones are skipped."""
        if not self.versions_dir.is_dir():
            return []
        manifests = []
        for path in sorted(self.versions_dir.iterdir()):
            try:
                manifests.append(self._read_manifest(path.name))
            except StoreError:
                continue
        return sorted(manifests, key=lambda m: (m.created_at, m.version))

    def _read_manifest(self, version: str) -> Manifest:
        path = self.versions_dir / check_name(version) / MANIFEST_NAME
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise VersionNotFound(f"version {version!r} not found in {self.root}") from None
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "manifest"
            raise CorruptVersion(
                f"version {version}: {MANIFEST_NAME} is invalid ({where}: {first['msg']})"
            ) from None
        if manifest.format_version > FORMAT_VERSION:
            raise UnsupportedFormat(
                f"version {version} has format_version {manifest.format_version}; this hashrec "
                f"reads up to {FORMAT_VERSION}: upgrade hashrec to load it"
            )
        if manifest.version != version:
            raise CorruptVersion(f"version {version}: manifest names {manifest.version!r}")
        return manifest

    def verify(self, version: str) -> Manifest:
        """Re-hash every file of ``version``; raise CorruptVersion naming the first bad file."""
        manifest = self._read_manifest(version)
        directory = self.versions_dir / version
        for file_name, entry in manifest.files.items():
            path = directory / check_name(file_name, "file")
            if not path.is_file():
                raise CorruptVersion(f"version {version}: {file_name} is missing")
            if path.stat().st_size != entry.size:
                raise CorruptVersion(
                    f"version {version}: {file_name} has {path.stat().st_size} bytes, "
                    f"manifest says {entry.size}"
                )
            if sha256_file(path) != entry.sha256:
                raise CorruptVersion(f"version {version}: {file_name} fails its sha256 check")
        return manifest

    def open(self, version: str | None = None) -> Artifact:
        """Verify and return a version (the current one by default)."""
        name = self.current() if version is None else version
        if name is None:
            raise VersionNotFound(f"store {self.root} has no current version: publish one first")
        manifest = self.verify(name)
        return Artifact(path=self.versions_dir / name, manifest=manifest)
