"""The model store: immutable, checksummed versions; atomically replaced aliases with history.

Layout (``FORMAT.md`` is the reference)::

    ROOT/versions/<version>/manifest.json, manifest.sha256, *.npy, *.faissindex
    ROOT/refs/<alias>          one line: the version the alias names (``current``, ``production``, ...)
    ROOT/logs/<alias>.log      append-only JSON lines, one per change of the alias
    ROOT/pins/<version>        a pinned version (JSON note); gc and delete never remove it
    ROOT/.staging/             versions being written (local stores only); never read
    ROOT/.lock                 serializes ref changes, gc and deletes

``ROOT`` is a directory or an ``s3://bucket/prefix`` URL (see :mod:`model_store.backends`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from hashrec.model_store.backends import Backend, LocalBackend, make_backend, parse_location
from hashrec.model_store.diff import Change, diff_manifests
from hashrec.model_store.errors import CorruptVersion, StoreError, UnsupportedFormat, VersionNotFound
from hashrec.model_store.fsutil import fsync_dir, sha256_file
from hashrec.model_store.fsutil import write_durable as _write_durable
from hashrec.model_store.local_copies import default_cache_dir, fetch_version
from hashrec.model_store.manifest import FORMAT_VERSION, MANIFEST_NAME, SUMS_NAME, FileEntry, Manifest
from hashrec.model_store.names import check_name, new_version_name
from hashrec.model_store.refs import RefEvent, parse_log, rollback_target
from hashrec.model_store.staging import StagingDir, sweep_staging
from pydantic import ValidationError

__all__ = ["Artifact", "GcReport", "ModelStore", "check_name", "sha256_file"]

VERSIONS, REFS, LOGS, PINS, STAGING = "versions", "refs", "logs", "pins", ".staging"
CURRENT = "current"
#: Incomplete remote versions younger than this are assumed to be still uploading.
DEFAULT_STALE_AFTER_S = 3600.0
#: Remote publish uploads files concurrently in batches of about this many bytes.
UPLOAD_BATCH_BYTES = 64 << 20
#: Largest manifest read (a version's lists a few dozen files and its config; 1,000x that margin).
MAX_MANIFEST_BYTES = 4 << 20
#: Largest checksum file, ref or pin record read.
MAX_META_BYTES = 64 << 10
_RESERVED_FILES = {MANIFEST_NAME, SUMS_NAME}


@dataclass(frozen=True)
class Artifact:
    """A verified version on local disk.

    Parameters
    ----------
    path : Path
        The version directory (for a remote store, its copy in the local cache).
    manifest : Manifest
        Its parsed manifest; every file in it matched its checksum when opened.
    """

    path: Path
    manifest: Manifest

    @property
    def version(self) -> str:
        """The version name."""
        return self.manifest.version

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """Load array ``name`` (without ``.npy``), memory-mapped by default, never unpickled."""
        file_name = f"{name}.npy"
        if file_name not in self.manifest.files:
            raise CorruptVersion(f"version {self.version} has no array {name!r}")
        return np.load(self.path / file_name, mmap_mode="r" if mmap else None, allow_pickle=False)

    def has(self, file_name: str) -> bool:
        """Whether the manifest lists ``file_name``."""
        return file_name in self.manifest.files

    def file_path(self, file_name: str) -> Path:
        """Path of a non-array file listed in the manifest."""
        if file_name not in self.manifest.files:
            raise CorruptVersion(f"version {self.version} has no file {file_name!r}")
        return self.path / file_name


@dataclass
class GcReport:
    """What :meth:`ModelStore.gc` removed (or would remove, with ``dry_run``).

    Attributes
    ----------
    deleted : list of str
        Versions deleted.
    kept : dict of str to list of str
        Every version kept, with the reasons (``current``, ``alias production``, ``pinned``,
        ``rollback target of current``, ``newest 3``).
    incomplete : list of str
        Leftovers of interrupted publishes removed: local staging directories, remote versions
        without a manifest.
    unreadable : dict of str to str
        Version folders whose manifest cannot be read; left alone (``delete`` removes them).
    dry_run : bool
        Nothing was removed.
    """

    deleted: list[str] = field(default_factory=list)
    kept: dict[str, list[str]] = field(default_factory=dict)
    incomplete: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


def _npy_bytes(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _payload(arrays: Mapping[str, np.ndarray], blobs: Mapping[str, bytes]) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of every file of a version, serialized one at a time."""
    for name, array in arrays.items():
        yield f"{name}.npy", _npy_bytes(array)
    yield from blobs.items()


def sums_line(manifest_bytes: bytes) -> bytes:
    """The ``manifest.sha256`` content for manifest bytes (``sha256sum -c`` format)."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_NAME}\n".encode()


class ModelStore:
    """Versioned artifacts in a local directory or an S3-compatible bucket.

    Parameters
    ----------
    root : str or PathLike
        A directory (created on first publish), ``file:///dir``, or ``s3://bucket/prefix``.
    cache_dir : str or PathLike, optional
        Remote stores only: where :meth:`open` keeps verified local copies. Default:
        ``$HASHREC_STORE_CACHE`` or ``~/.cache/hashrec/<hash of the URL>``.
    storage_options : mapping, optional
        Remote stores only: fsspec options (``endpoint_url``, ``key``, ``secret``, ...). The
        standard ``AWS_*`` environment variables work too.
    lock_timeout : float
        Seconds to wait for the store lock before failing with StoreError.

    Notes
    -----
    Reads (:meth:`current`, :meth:`list_versions`, :meth:`open`) take no lock. Publishing writes
    the version without the lock and takes it only to make the version visible and move refs;
    every other change (aliases, pins, rollback, gc, delete) runs under it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        lock_timeout: float = 60.0,
    ) -> None:
        self.url, local = parse_location(root)
        self._local_root = local
        self.backend: Backend = make_backend(self.url, local, storage_options, lock_timeout)
        self.is_remote = local is None
        self.cache_dir: Path | None = None
        if self.is_remote:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(self.url)

    def __repr__(self) -> str:
        return f"ModelStore({self.url!r})"

    # ---- layout (local stores) ------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The store directory (local stores); for a remote store, its local cache directory."""
        if self._local_root is not None:
            return self._local_root
        assert self.cache_dir is not None
        return self.cache_dir

    @property
    def versions_dir(self) -> Path:
        """``ROOT/versions`` (for a remote store, the cached copies)."""
        return self.root / VERSIONS

    @property
    def refs_dir(self) -> Path:
        """``ROOT/refs`` of a local store."""
        return self.root / REFS

    def _lock(self) -> AbstractContextManager[None]:
        """The store lock (reentrant)."""
        return self.backend.lock()

    # ---- publishing -----------------------------------------------------------------------
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

        Parameters
        ----------
        arrays : mapping of str to ndarray
            Saved as ``<name>.npy`` (no pickle: object arrays are refused).
        blobs : mapping of str to bytes, optional
            Other files, such as the faiss index.
        bits : int
            Code width recorded in the manifest.
        dataset, config, metrics, libraries : mapping, optional
            Recorded in the manifest as given (JSON-serializable).
        make_current : bool
            Point ``current`` at the new version (logged as a ``publish``).

        Returns
        -------
        str
            The generated version name.

        Notes
        -----
        Local store: files are written and fsynced into ``.staging/``, re-hashed from disk, then
        the directory is renamed into ``versions/`` under the lock; only after that is ``current``
        replaced. Remote store: files are uploaded and their sizes checked, then
        ``manifest.sha256``, then ``manifest.json`` (a version without its manifest is invisible),
        then the ref. A crash at any point leaves either no new version or a complete one.
        """
        blobs = blobs or {}
        names = [f"{check_name(name, 'file')}.npy" for name in arrays]
        names += [check_name(name, "file") for name in blobs]
        clash = _RESERVED_FILES.intersection(names) or {n for n in names if names.count(n) > 1}
        if clash:
            raise StoreError(f"file name {sorted(clash)[0]!r} is reserved or given twice")
        meta = {
            "bits": bits,
            "dataset": dict(dataset or {}),
            "config": dict(config or {}),
            "metrics": dict(metrics or {}),
            "libraries": dict(libraries or {}),
        }
        version = new_version_name()
        if self.is_remote:
            self._publish_remote(version, arrays, blobs, meta, make_current)
        else:
            self._publish_local(version, arrays, blobs, meta, make_current)
        return version

    def _manifest_bytes(self, version: str, files: dict[str, FileEntry], meta: dict[str, Any]) -> bytes:
        """Serialized manifest of a new version."""
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            version=version,
            created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            files=files,
            **meta,
        )
        return manifest.model_dump_json(indent=2).encode() + b"\n"

    def _publish_local(
        self,
        version: str,
        arrays: Mapping[str, np.ndarray],
        blobs: Mapping[str, bytes],
        meta: dict[str, Any],
        make_current: bool,
    ) -> None:
        """Stage, fsync, re-hash, then rename into ``versions/`` and move the ref under the lock."""
        with StagingDir(self.root / STAGING, version) as staging:
            written: dict[str, tuple[str, int]] = {}
            for file_name, data in _payload(arrays, blobs):
                _write_durable(staging.path / file_name, data)
                written[file_name] = (hashlib.sha256(data).hexdigest(), len(data))
            files = {}
            for file_name, (digest, size) in written.items():
                path = staging.path / file_name
                if path.stat().st_size != size or sha256_file(path) != digest:
                    raise StoreError(f"{file_name} changed on disk while publishing")
                files[file_name] = FileEntry(sha256=digest, size=size)
            manifest_bytes = self._manifest_bytes(version, files, meta)
            _write_durable(staging.path / MANIFEST_NAME, manifest_bytes)
            _write_durable(staging.path / SUMS_NAME, sums_line(manifest_bytes))
            fsync_dir(staging.path)
            with self._lock():
                self.versions_dir.mkdir(exist_ok=True)
                target = self.versions_dir / version
                if target.exists():
                    raise StoreError(f"version {version} already exists: publish again")
                os.rename(staging.path, target)
                staging.committed = True
                fsync_dir(self.versions_dir)
                if make_current:
                    self._move_ref(CURRENT, version, "publish")

    def _publish_remote(
        self,
        version: str,
        arrays: Mapping[str, np.ndarray],
        blobs: Mapping[str, bytes],
        meta: dict[str, Any],
        make_current: bool,
    ) -> None:
        """Upload every file, check sizes; then, under the lock, checksum file, manifest, ref."""
        prefix = f"{VERSIONS}/{version}"
        if self.backend.list_names(prefix):
            raise StoreError(f"version {version} already exists: publish again")
        files = {}
        visible = False
        try:
            batch: dict[str, bytes] = {}
            for file_name, data in _payload(arrays, blobs):
                files[file_name] = FileEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                batch[f"{prefix}/{file_name}"] = data
                if sum(len(d) for d in batch.values()) >= UPLOAD_BATCH_BYTES:
                    self.backend.put_many(batch)
                    batch = {}
            self.backend.put_many(batch)
            uploaded = self.backend.sizes(prefix)
            for file_name, entry in files.items():
                if uploaded.get(file_name) != entry.size:
                    raise StoreError(f"{file_name} has the wrong size after upload")
            manifest_bytes = self._manifest_bytes(version, files, meta)
            with self._lock():
                self.backend.put_bytes(f"{prefix}/{SUMS_NAME}", sums_line(manifest_bytes))
                self.backend.put_bytes(f"{prefix}/{MANIFEST_NAME}", manifest_bytes)
                visible = True
                if make_current:
                    self._move_ref(CURRENT, version, "publish")
        except BaseException:
            if not visible:
                with suppress(Exception):  # best effort; gc removes what is left
                    self.backend.remove_tree(prefix)
            raise

    # ---- refs -------------------------------------------------------------------------------
    def _read_ref(self, alias: str) -> str | None:
        """Version named by an alias, None if unset."""
        try:
            raw = self.backend.read_small(f"{REFS}/{check_name(alias, 'alias')}", MAX_META_BYTES)
        except FileNotFoundError:
            return None
        name = raw.decode(errors="replace").strip()
        try:
            return check_name(name)
        except StoreError:
            raise StoreError(f"ref {alias} of store {self.url} is damaged ({name[:40]!r})") from None

    def _move_ref(self, alias: str, version: str | None, action: str) -> str | None:
        """Point (or, with None, remove) an alias and log it; returns the old value. Caller locks."""
        previous = self._read_ref(alias)
        key = f"{REFS}/{check_name(alias, 'alias')}"
        if version is None:
            self.backend.remove(key)
        else:
            self.backend.put_bytes(key, f"{check_name(version)}\n".encode())
        event = RefEvent.now(alias, action, version, previous)
        self.backend.append_record(f"{LOGS}/{alias}.log", event.to_line())
        return previous

    def current(self) -> str | None:
        """Name of the current version, or None when nothing was published.

        One small read (a file, or one GET on S3): cheap enough to poll.
        """
        return self._read_ref(CURRENT)

    def aliases(self) -> dict[str, str]:
        """Every alias (``current`` included) and the version it names."""
        out = {}
        for name in self.backend.list_names(REFS):
            try:
                check_name(name, "alias")
            except StoreError:
                continue  # a temporary file of an interrupted write
            version = self._read_ref(name)
            if version is not None:
                out[name] = version
        return out

    def resolve(self, name: str) -> str:
        """The version a version name or an alias stands for (a version name wins)."""
        check_name(name)
        if self._version_exists(name):
            return name
        target = self._read_ref(name)
        if target is None:
            raise VersionNotFound(f"no version or alias {name!r} in store {self.url}")
        return target

    def promote(
        self, version: str, alias: str = CURRENT, check: Callable[[Artifact], object] | None = None
    ) -> str | None:
        """Point ``alias`` at ``version`` after verifying it; returns what it named before.

        ``check``, if given, also inspects the verified version (opened on local disk) before the
        alias moves, and refuses it by raising; the version is hashed once either way.

        Raises
        ------
        VersionNotFound, CorruptVersion, UnsupportedFormat
            The version is missing or fails verification (or ``check``); nothing changes.
        """
        check_name(alias, "alias")
        # outside the lock: re-hashing a large version may take a while
        if check is None:
            self.verify(version)
        else:
            check(self.open(version))  # open verifies
        with self._lock():
            if not self._version_exists(version):  # deleted meanwhile
                raise VersionNotFound(f"version {version!r} not found in {self.url}")
            return self._move_ref(alias, version, "promote")

    def set_alias(self, alias: str, version: str) -> None:
        """Point ``alias`` at a verified ``version`` (same as ``promote(version, alias)``)."""
        self.promote(version, alias)

    def set_current(self, version: str) -> None:
        """Point ``current`` at an existing, verified version."""
        self.promote(version, CURRENT)

    def remove_alias(self, alias: str) -> str:
        """Delete an alias other than ``current``; returns the version it named."""
        if check_name(alias, "alias") == CURRENT:
            raise StoreError("the current alias cannot be removed; promote another version instead")
        with self._lock():
            version = self._read_ref(alias)
            if version is None:
                raise VersionNotFound(f"alias {alias!r} is not set in store {self.url}")
            self._move_ref(alias, None, "remove")
            return version

    def history(self, alias: str = CURRENT) -> list[RefEvent]:
        """Changes of an alias, oldest first."""
        try:
            raw = self.backend.read_bytes(f"{LOGS}/{check_name(alias, 'alias')}.log")
        except FileNotFoundError:
            return []
        return parse_log(raw)

    def rollback_target(self, alias: str = CURRENT) -> str | None:
        """The version :meth:`rollback` would point ``alias`` at, or None."""
        return rollback_target(self.history(alias), self._read_ref(alias), self._version_exists)

    def rollback(self, alias: str = CURRENT) -> str:
        """Point ``alias`` back at the version it named before; returns that version.

        Repeated rollbacks walk further back through the history. The target is verified first.

        Raises
        ------
        StoreError
            The alias is unset or has no earlier version that still exists.
        """
        verified: str | None = None
        for _ in range(3):  # verify outside the lock; retry if the alias moved meanwhile
            target = self._rollback_plan(alias)
            if target != verified:
                self.verify(target)
                verified = target
            with self._lock():
                if self._rollback_plan(alias) == target and self._version_exists(target):
                    self._move_ref(alias, target, "rollback")
                    return target
        raise StoreError(f"{alias} kept changing during the rollback: try again")

    def _rollback_plan(self, alias: str) -> str:
        """The rollback target of an alias, or a StoreError saying why there is none."""
        current = self._read_ref(alias)
        if current is None:
            raise VersionNotFound(f"alias {alias!r} is not set in store {self.url}")
        target = self.rollback_target(alias)
        if target is None:
            raise StoreError(f"{alias} ({current}) has no earlier version to roll back to")
        return target

    # ---- pins ---------------------------------------------------------------------------------
    def pins(self) -> dict[str, dict[str, Any]]:
        """Pinned versions and their notes (``pinned_at``, ``note``)."""
        out = {}
        for name in self.backend.list_names(PINS):
            try:
                record = json.loads(self.backend.read_small(f"{PINS}/{check_name(name)}", MAX_META_BYTES))
            except (StoreError, FileNotFoundError):
                continue
            except ValueError:
                record = {}
            out[name] = record if isinstance(record, dict) else {}
        return out

    def pin(self, version: str, note: str = "") -> None:
        """Protect a version from gc and delete."""
        with self._lock():
            self._read_manifest(version)
            record = {"pinned_at": datetime.now(UTC).isoformat(timespec="seconds"), "note": note}
            self.backend.put_bytes(f"{PINS}/{version}", json.dumps(record).encode() + b"\n")

    def unpin(self, version: str) -> bool:
        """Remove a pin; returns whether the version was pinned."""
        with self._lock():
            key = f"{PINS}/{check_name(version)}"
            was_pinned = self.backend.exists(key)
            self.backend.remove(key)
            return was_pinned

    # ---- reading ------------------------------------------------------------------------------
    def _version_exists(self, version: str) -> bool:
        """Whether a complete (manifest present) version exists."""
        return self.backend.exists(f"{VERSIONS}/{check_name(version)}/{MANIFEST_NAME}")

    def list_versions(self) -> list[Manifest]:
        """Manifests of every complete version, oldest first; unreadable ones are skipped."""
        manifests = []
        for name in self.backend.list_names(VERSIONS):
            try:
                manifests.append(self._read_manifest(name)[0])
            except StoreError:
                continue
        return sorted(manifests, key=lambda m: (m.created_at, m.version))

    def version_folders(self) -> list[str]:
        """Every version folder: listed versions oldest first, then unreadable ones by name.

        Remote uploads still lacking a manifest are left out (they are not versions yet).
        """
        listed = [m.version for m in self.list_versions()]
        others = []
        for name in self.backend.list_names(VERSIONS):
            try:
                check_name(name)
            except StoreError:
                continue
            if name not in listed and (not self.is_remote or self._version_exists(name)):
                others.append(name)
        return listed + others

    def manifest(self, version: str) -> Manifest:
        """The parsed manifest of a version (not verified: see :meth:`verify`)."""
        return self._read_manifest(version)[0]

    def _read_manifest(self, version: str) -> tuple[Manifest, bytes]:
        """Parse a version's manifest; newer formats are refused before anything else is read."""
        key = f"{VERSIONS}/{check_name(version)}/{MANIFEST_NAME}"
        try:
            raw = self.backend.read_small(key, MAX_MANIFEST_BYTES)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise VersionNotFound(f"version {version!r} not found in {self.url}") from None
        try:
            loose = json.loads(raw)
        except ValueError:
            raise CorruptVersion(f"version {version}: {MANIFEST_NAME} is not valid JSON") from None
        declared = loose.get("format_version") if isinstance(loose, dict) else None
        if isinstance(declared, int) and declared > FORMAT_VERSION:
            raise UnsupportedFormat(
                f"version {version} has format_version {declared}; this hashrec "
                f"reads up to {FORMAT_VERSION}: upgrade hashrec to load it"
            )
        try:
            manifest = Manifest.model_validate(loose)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "manifest"
            raise CorruptVersion(
                f"version {version}: {MANIFEST_NAME} is invalid ({where}: {first['msg']})"
            ) from None
        if manifest.version != version:
            raise CorruptVersion(f"version {version}: manifest names {manifest.version!r}")
        return manifest, raw

    def verify(self, version: str) -> Manifest:
        """Re-hash every file of ``version``; raise CorruptVersion naming the first bad file.

        The manifest itself is checked against ``manifest.sha256``; every other file against
        the size and sha256 in the manifest. On S3 the objects are streamed, not cached.

        Returns
        -------
        Manifest
            The verified manifest.
        """
        manifest, raw = self._read_manifest(version)
        prefix = f"{VERSIONS}/{version}"
        try:
            sums = self.backend.read_small(f"{prefix}/{SUMS_NAME}", MAX_META_BYTES)
        except FileNotFoundError:
            raise CorruptVersion(f"version {version}: {SUMS_NAME} is missing") from None
        if sums.strip() != sums_line(raw).strip():
            raise CorruptVersion(f"version {version}: {MANIFEST_NAME} fails its sha256 check")
        sizes = self.backend.sizes(prefix)
        for file_name, entry in manifest.files.items():
            size = sizes.get(check_name(file_name, "file"))
            if size is None:
                raise CorruptVersion(f"version {version}: {file_name} is missing")
            if size != entry.size:
                raise CorruptVersion(
                    f"version {version}: {file_name} has {size} bytes, manifest says {entry.size}"
                )
        digests = self.backend.sha256_many({f"{prefix}/{name}": e.size for name, e in manifest.files.items()})
        for file_name, entry in manifest.files.items():
            if digests[f"{prefix}/{file_name}"] != entry.sha256:
                raise CorruptVersion(f"version {version}: {file_name} fails its sha256 check")
        return manifest

    def open(self, version: str | None = None) -> Artifact:
        """Verify and return a version (the current one by default) on local disk.

        A remote version is downloaded into ``cache_dir`` first (once; later opens re-verify the
        cached copy and fetch it again only if it no longer matches).
        """
        name = self.current() if version is None else version
        if name is None:
            raise VersionNotFound(f"store {self.url} has no current version: publish one first")
        if not self.is_remote:
            manifest = self.verify(name)
            return Artifact(path=self.versions_dir / name, manifest=manifest)
        return self._open_remote(name)

    def _open_remote(self, version: str) -> Artifact:
        """Download (if needed) and verify a remote version in the local cache."""
        manifest, raw = self._read_manifest(version)
        assert self.cache_dir is not None
        cache = ModelStore(self.cache_dir)
        cached = cache.versions_dir / check_name(version) / MANIFEST_NAME
        if cached.is_file() and cached.read_bytes() == raw:
            try:
                return cache.open(version)
            except StoreError:
                pass  # a damaged cached copy: fetch it again
        shutil.rmtree(cache.versions_dir / version, ignore_errors=True)
        fetch_version(self.backend, version, [*manifest.files, SUMS_NAME, MANIFEST_NAME], self.cache_dir)
        try:
            artifact = cache.open(version)
            if (artifact.path / MANIFEST_NAME).read_bytes() != raw:
                raise CorruptVersion(f"version {version}: {MANIFEST_NAME} changed while downloading")
        except StoreError:
            shutil.rmtree(cache.versions_dir / version, ignore_errors=True)  # never keep a bad copy
            raise
        return artifact

    def size(self, version: str) -> int:
        """Bytes of a version's files, from its manifest."""
        return sum(entry.size for entry in self.manifest(version).files.values())

    def diff(self, a: str, b: str) -> list[Change]:
        """Config, metric, dataset, bit width, library and file changes from ``a`` to ``b``."""
        return diff_manifests(self.manifest(a), self.manifest(b))

    # ---- retention ----------------------------------------------------------------------------
    def protected(self) -> dict[str, list[str]]:
        """Versions gc and delete must keep, with why: aliases, pins and rollback targets."""
        reasons: dict[str, list[str]] = {}
        aliases = self.aliases()
        for alias, version in sorted(aliases.items()):
            reasons.setdefault(version, []).append(CURRENT if alias == CURRENT else f"alias {alias}")
        for version in self.pins():
            reasons.setdefault(version, []).append("pinned")
        for alias in sorted(aliases):
            target = self.rollback_target(alias)
            if target is not None:
                reasons.setdefault(target, []).append(f"rollback target of {alias}")
        return reasons

    def delete(self, version: str) -> None:
        """Delete one version that no alias, pin or rollback target protects.

        Raises
        ------
        StoreError
            Naming what protects the version.
        """
        check_name(version)
        with self._lock():
            reasons = self.protected().get(version)
            if reasons:
                raise StoreError(f"refusing to delete {version}: it is {', '.join(reasons)}")
            if not self.backend.list_names(f"{VERSIONS}/{version}"):
                raise VersionNotFound(f"version {version!r} not found in {self.url}")
            self._remove_version(version)

    def _remove_version(self, version: str) -> None:
        """Make a version invisible first, then remove its files; the caller holds the lock."""
        if isinstance(self.backend, LocalBackend):
            with StagingDir(self.root / STAGING, f"deleted-{version}") as trash:
                trash.path.rmdir()
                os.rename(self.versions_dir / version, trash.path)
                fsync_dir(self.versions_dir)
            return
        self.backend.remove(f"{VERSIONS}/{version}/{MANIFEST_NAME}")
        self.backend.remove_tree(f"{VERSIONS}/{version}")
        if self.cache_dir is not None:
            shutil.rmtree(self.cache_dir / VERSIONS / version, ignore_errors=True)

    def gc(self, keep: int, *, dry_run: bool = False, stale_after_s: float | None = None) -> GcReport:
        """Delete all but the ``keep`` newest versions, never a protected one; clean leftovers.

        Parameters
        ----------
        keep : int
            How many of the newest versions to keep whatever else protects them (>= 0).
        dry_run : bool
            Report without removing anything.
        stale_after_s : float, optional
            Remote stores: a version folder without a manifest is removed only when nothing in it
            changed for this long (default one hour), as it may still be uploading. Local staging
            directories are removed as soon as their writer is gone, whatever their age.

        Returns
        -------
        GcReport
        """
        if keep < 0:
            raise StoreError(f"keep must be >= 0, got {keep}")
        report = GcReport(dry_run=dry_run)
        with self._lock():
            manifests = self.list_versions()
            protected = self.protected()
            newest = [m.version for m in manifests[len(manifests) - keep :]] if keep else []
            for manifest in manifests:
                reasons = list(protected.get(manifest.version, []))
                if manifest.version in newest:
                    reasons.append(f"newest {keep}")
                if reasons:
                    report.kept[manifest.version] = reasons
                else:
                    report.deleted.append(manifest.version)
                    if not dry_run:
                        self._remove_version(manifest.version)
            listed = {m.version for m in manifests}
            self._gc_leftovers(listed, report, stale_after_s)
        return report

    def _gc_leftovers(self, listed: set[str], report: GcReport, stale_after_s: float | None) -> None:
        """Remove staging leftovers, stray temporary ref files and stale incomplete uploads."""
        dry_run = report.dry_run
        if isinstance(self.backend, LocalBackend):
            report.incomplete.extend(sweep_staging(self.root / STAGING, dry_run=dry_run))
            for folder in (REFS, PINS, LOGS):
                for name in self.backend.list_names(folder):
                    if name.startswith(".") and name.endswith(".tmp") and not dry_run:
                        self.backend.remove(f"{folder}/{name}")
        stale_after = DEFAULT_STALE_AFTER_S if stale_after_s is None else stale_after_s
        now = datetime.now(UTC).timestamp()
        for name in self.backend.list_names(VERSIONS):
            if name in listed:
                continue
            try:
                self._read_manifest(name)
            except VersionNotFound:
                newest = self.backend.newest_mtime(f"{VERSIONS}/{name}")
                if self.is_remote and (newest is None or now - newest >= stale_after):
                    report.incomplete.append(name)
                    if not dry_run:
                        self.backend.remove_tree(f"{VERSIONS}/{name}")
                elif not self.is_remote:
                    report.unreadable[name] = "no manifest"
            except StoreError as err:
                report.unreadable[name] = str(err)
