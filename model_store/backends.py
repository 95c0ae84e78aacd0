"""Where a store's bytes live: a local directory, or any fsspec filesystem (S3 and compatible).

Keys are relative POSIX paths such as ``versions/v1/manifest.json``. A backend only moves bytes;
the store layout and its rules live in :mod:`model_store.store`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, TypeVar

from filelock import FileLock, Timeout
from hashrec.model_store.errors import StoreError
from hashrec.model_store.fsutil import HASH_CHUNK, append_durable, atomic_write, sha256_file

#: fsspec protocols treated as remote stores when they appear as ``PROTOCOL://...``.
REMOTE_PROTOCOLS = ("s3", "s3a", "gs", "gcs", "az", "abfs", "memory")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(.*)$", re.IGNORECASE)  # schemes ignore case (RFC 3986)
_COLLAPSED = re.compile(r"^(" + "|".join(REMOTE_PROTOCOLS) + r"):/([^/].*)$", re.IGNORECASE)
LOCK_KEY = ".lock"
T = TypeVar("T")
#: Objects up to this size are hashed from one GET instead of a ranged stream.
SMALL_OBJECT = 32 << 20


def parse_location(location: str | os.PathLike[str]) -> tuple[str, Path | None]:
    """Split a store location into its URL and, for a local store, its directory.

    ``s3://bucket/prefix`` (and the other fsspec protocols in ``REMOTE_PROTOCOLS``) is remote;
    ``file:///dir`` and plain paths are local. A ``Path("s3://b/p")``, which pathlib collapses
    to ``s3:/b/p``, is recognised as the URL it was.
    """
    text = os.fspath(location)
    if not text.strip():
        raise StoreError("the store location is empty: give a directory or s3://bucket/prefix")
    if isinstance(location, PurePath) and (collapsed := _COLLAPSED.match(text)):
        text = f"{collapsed.group(1)}://{collapsed.group(2)}"
    match = _URL.match(text)
    if match is None:
        path = Path(text).expanduser()
        return str(path), path
    protocol, rest = match.groups()
    protocol = protocol.lower()
    if protocol == "file":
        path = Path(rest).expanduser()
        return str(path), path
    if protocol not in REMOTE_PROTOCOLS:
        raise StoreError(f"unsupported store URL {text!r}: use a directory or one of {REMOTE_PROTOCOLS}")
    if not rest.strip("/"):
        raise StoreError(f"store URL {text!r} names no bucket")
    return f"{protocol}://{rest.rstrip('/')}", None


class Backend(ABC):
    """Byte storage under one root; every method takes a relative key."""

    url: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Whole object; FileNotFoundError if missing."""

    @abstractmethod
    def read_small(self, key: str, max_bytes: int) -> bytes:
        """A small metadata object (manifest, checksum, ref), read only if it is a regular file of
        at most ``max_bytes``; StoreError otherwise (a FIFO would hang the reader, a link to
        /dev/zero never end), FileNotFoundError if missing."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Create or replace an object; readers see the old or the new content, never a mix."""

    @abstractmethod
    def append_record(self, key: str, line: bytes) -> None:
        """Append one line to a log object (callers hold the store lock)."""

    @abstractmethod
    def list_names(self, key: str) -> list[str]:
        """Names directly under ``key`` (files and folders); empty if it does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object (or folder) exists."""

    @abstractmethod
    def sizes(self, key: str) -> dict[str, int]:
        """Sizes of the files directly under folder ``key`` (one listing on object stores)."""

    @abstractmethod
    def sha256(self, key: str, size: int | None = None) -> str:
        """Hex sha256 of an object (``size``, when known, saves a request)."""

    def sha256_many(self, sizes: Mapping[str, int]) -> dict[str, str]:
        """Hex sha256 of several objects, keyed like ``sizes`` (key -> known size)."""
        return {key: self.sha256(key, size) for key, size in sizes.items()}

    def put_many(self, objects: Mapping[str, bytes]) -> None:
        """Upload several objects (concurrently where the backend can)."""
        for key, data in objects.items():
            self.put_bytes(key, data)

    @abstractmethod
    def newest_mtime(self, key: str) -> float | None:
        """Latest modification time (epoch seconds) of anything under ``key``, None if empty."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """Delete one object if it exists."""

    @abstractmethod
    def remove_tree(self, key: str) -> None:
        """Delete everything under ``key``."""

    @abstractmethod
    def fetch(self, key: str, dest: Path) -> None:
        """Copy an object to a local file."""

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """The store-wide lock serializing ref changes, gc and deletes (reentrant)."""


class LocalBackend(Backend):
    """A directory on a local (or POSIX network) filesystem; fsync'd, rename-based writes.

    Parameters
    ----------
    root : Path
        Store directory; created on the first write.
    lock_timeout : float
        Seconds to wait for the store lock before giving up.
    """

    def __init__(self, root: Path, lock_timeout: float = 60.0) -> None:
        self.root = root
        self.url = str(root)
        self.lock_timeout = lock_timeout
        # One FileLock per backend: it counts nested acquisitions (per thread), so the store lock
        # is reentrant as Backend.lock promises; a new FileLock per call waited on itself.
        self._file_lock = FileLock(str(root / LOCK_KEY), timeout=lock_timeout)

    def path(self, key: str) -> Path:
        """Local path of a key."""
        return self.root / key if key else self.root

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def read_small(self, key: str, max_bytes: int) -> bytes:
        path = self.path(key)
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then names what was opened
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StoreError(f"{key} in store {self.url} is not a regular file")
            if info.st_size > max_bytes:
                raise StoreError(
                    f"{key} in store {self.url} is {info.st_size} bytes, over the {max_bytes} limit"
                )
            with os.fdopen(fd, "rb", closefd=False) as stream:
                data = stream.read(max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > max_bytes:  # grew while being read
            raise StoreError(f"{key} in store {self.url} is over the {max_bytes}-byte limit")
        return data

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def append_record(self, key: str, line: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        append_durable(path, line)

    def list_names(self, key: str) -> list[str]:
        path = self.path(key)
        return sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def sizes(self, key: str) -> dict[str, int]:
        path = self.path(key)
        if not path.is_dir():
            return {}
        return {entry.name: entry.stat().st_size for entry in path.iterdir() if entry.is_file()}

    def sha256(self, key: str, size: int | None = None) -> str:
        return sha256_file(self.path(key))

    def newest_mtime(self, key: str) -> float | None:
        path = self.path(key)
        if not path.exists():
            return None
        times = [p.stat().st_mtime for p in [path, *path.rglob("*")]]
        return max(times)

    def remove(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def remove_tree(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.path(key), dest)

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        file_lock = self._file_lock
        try:
            file_lock.acquire()
        except Timeout:
            raise StoreError(
                f"store {self.url} is locked by another process for more than {self.lock_timeout:g} s"
            ) from None
        try:
            yield
        finally:
            file_lock.release()


def _remote_errors(method: Callable[..., T]) -> Callable[..., T]:
    """Report a remote failure (network, permissions, server) as StoreError.

    ``FileNotFoundError`` and ``FileExistsError`` pass through: the store reads them as answers.
    """

    @functools.wraps(method)
    def wrapper(self: FsspecBackend, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (FileNotFoundError, FileExistsError, StoreError):
            raise
        except Exception as err:
            detail = str(err).splitlines()[0] if str(err).strip() else ""
            raise StoreError(f"store {self.url}: {type(err).__name__}: {detail}".rstrip(": ")) from err

    return wrapper


def _mtime(info: Mapping[str, Any]) -> float | None:
    """Modification time of an fsspec info record, as epoch seconds."""
    for field in ("LastModified", "mtime", "created"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


class FsspecBackend(Backend):
    """Objects under a prefix of an fsspec filesystem (``s3://bucket/prefix``, ``memory://x``).

    There is no rename: a writer uploads files in an order that makes them visible only when
    complete (see :mod:`model_store.store`). Single-object PUTs are atomic. The store lock is an
    object created with an exclusive (If-None-Match) write, held with a lease that expires after
    ``lock_ttl`` seconds so that a crashed holder cannot block the store forever.

    Parameters
    ----------
    url : str
        ``protocol://bucket/prefix``.
    storage_options : mapping, optional
        Passed to the fsspec filesystem (e.g. ``endpoint_url``, ``key``, ``secret``). For S3,
        listings are never cached, so every replica sees new versions at once.
    lock_timeout : float
        Seconds to wait for the store lock.
    lock_ttl : float
        Lease of the lock object; a lock older than this is broken.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        lock_timeout: float = 60.0,
        lock_ttl: float = 120.0,
    ) -> None:
        import fsspec

        options = dict(storage_options or {})
        if url.startswith(("s3://", "s3a://")):
            options.setdefault("use_listings_cache", False)
        self.url = url
        self.fs, base = fsspec.core.url_to_fs(url, **options)
        self.base = base.rstrip("/")
        self.lock_timeout = lock_timeout
        self.lock_ttl = lock_ttl
        self._thread_lock = threading.RLock()
        self._depth = 0

    def _p(self, key: str) -> str:
        """Full filesystem path of a key."""
        return f"{self.base}/{key}" if key else self.base

    @_remote_errors
    def read_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._p(key)))

    @_remote_errors
    def read_small(self, key: str, max_bytes: int) -> bytes:
        data = bytes(self.fs.cat_file(self._p(key), start=0, end=max_bytes + 1))
        if len(data) > max_bytes:
            raise StoreError(f"{key} in store {self.url} is over the {max_bytes}-byte limit")
        return data

    @_remote_errors
    def put_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(key), data)

    @_remote_errors
    def append_record(self, key: str, line: bytes) -> None:
        try:
            old = self.read_bytes(key)
        except FileNotFoundError:
            old = b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        self.put_bytes(key, old + (line if line.endswith(b"\n") else line + b"\n"))

    @_remote_errors
    def list_names(self, key: str) -> list[str]:
        try:
            entries = self.fs.ls(self._p(key), detail=False)
        except FileNotFoundError:
            return []
        own = self._p(key).strip("/")
        paths = {str(entry).strip("/") for entry in entries}
        return sorted(PurePosixPath(path).name for path in paths if path and path != own)

    @_remote_errors
    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._p(key)))

    @_remote_errors
    def sizes(self, key: str) -> dict[str, int]:
        try:
            entries = self.fs.ls(self._p(key), detail=True)
        except FileNotFoundError:
            return {}
        return {
            PurePosixPath(str(info["name"]).strip("/")).name: int(info["size"])
            for info in entries
            if info.get("type") == "file"
        }

    @_remote_errors
    def sha256(self, key: str, size: int | None = None) -> str:
        if size is not None and size <= SMALL_OBJECT:
            return hashlib.sha256(self.read_bytes(key)).hexdigest()  # one GET
        digest = hashlib.sha256()
        with self.fs.open(self._p(key), "rb", block_size=HASH_CHUNK * 8) as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    @_remote_errors
    def sha256_many(self, sizes: Mapping[str, int]) -> dict[str, str]:
        small = [key for key, size in sizes.items() if size <= SMALL_OBJECT]
        out = {}
        if small:
            fetched = self.fs.cat([self._p(key) for key in small])  # concurrent GETs
            out = {key: hashlib.sha256(fetched[self._p(key)]).hexdigest() for key in small}
        for key, size in sizes.items():
            if key not in out:
                out[key] = self.sha256(key, size)
        return out

    @_remote_errors
    def put_many(self, objects: Mapping[str, bytes]) -> None:
        if objects:
            self.fs.pipe({self._p(key): data for key, data in objects.items()})  # concurrent PUTs

    @_remote_errors
    def newest_mtime(self, key: str) -> float | None:
        try:
            found = self.fs.find(self._p(key), detail=True)
        except FileNotFoundError:
            return None
        times = [t for info in found.values() if (t := _mtime(info)) is not None]
        return max(times) if times else None

    @_remote_errors
    def remove(self, key: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self._p(key))

    @_remote_errors
    def remove_tree(self, key: str) -> None:
        try:
            paths = list(self.fs.find(self._p(key)))
        except FileNotFoundError:
            return
        if paths:
            self.fs.rm(paths)

    @_remote_errors
    def fetch(self, key: str, dest: Path) -> None:
        self.fs.get_file(self._p(key), str(dest))

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                token = self._acquire_lease()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release_lease(token)

    def _read_lease(self) -> dict[str, Any] | None:
        """The current lock holder's record, None if there is no lock object."""
        try:
            record = json.loads(self.read_bytes(LOCK_KEY))
        except FileNotFoundError:
            return None
        except ValueError:
            return {"expires": 0.0}
        return record if isinstance(record, dict) else {"expires": 0.0}

    @_remote_errors
    def _acquire_lease(self) -> str:
        """Create the lock object exclusively; break it if its lease ran out."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.02
        while True:
            record = {
                "owner": token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + self.lock_ttl,
            }
            try:
                self.fs.pipe_file(self._p(LOCK_KEY), json.dumps(record).encode(), mode="create")
                return token
            except FileExistsError:
                holder = self._read_lease()
            if holder is not None and float(holder.get("expires", 0.0)) < time.time():
                self.remove(LOCK_KEY)  # an expired lease: its holder died or hung
                continue
            if time.monotonic() > deadline:
                who = f"{holder.get('host')} pid {holder.get('pid')}" if holder else "another writer"
                raise StoreError(f"store {self.url} is locked by {who} for more than {self.lock_timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    @_remote_errors
    def _release_lease(self, token: str) -> None:
        """Delete the lock object if it is still ours."""
        holder = self._read_lease()
        if holder is not None and holder.get("owner") == token:
            self.remove(LOCK_KEY)


def make_backend(
    url: str,
    local: Path | None,
    storage_options: Mapping[str, Any] | None = None,
    lock_timeout: float = 60.0,
) -> Backend:
    """The backend for a location returned by :func:`parse_location`."""
    if local is not None:
        return LocalBackend(local, lock_timeout)
    try:
        return FsspecBackend(url, storage_options, lock_timeout)
    except ImportError as err:  # fsspec's message names the package: "Please install gcsfs ..."
        raise StoreError(f"store {url}: {err}") from err
