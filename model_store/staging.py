"""Staging directories guarded by an flock, so a sweeper can tell a live writer from a dead one.

A writer creates ``<parent>/<name>.lock``, holds an exclusive ``flock`` on it, then creates the
directory ``<parent>/<name>``. The kernel drops the lock when the writer exits, however it exits
(SIGKILL included), so :func:`sweep_staging` removes exactly the leftovers of dead writers and never
the directory of a writer still at work. POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

LOCK_SUFFIX = ".lock"


def _lock_exclusive(lock_path: Path, block: bool) -> int | None:
    """Open and flock ``lock_path``; the fd, or None if another process holds it (non-blocking)."""
    while True:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # a sweeper unlinked the file we locked: lock the new one


class StagingDir:
    """A fresh directory under ``parent`` for one writer, removed on failure.

    Parameters
    ----------
    parent : Path
        The staging area (created if missing).
    prefix : str
        Start of the directory name (the version being written); a random suffix follows.

    Attributes
    ----------
    path : Path
        The directory to write into. Set ``committed = True`` once it has been renamed away.
    """

    def __init__(self, parent: Path, prefix: str) -> None:
        self.parent = parent
        self.name = f"{prefix}.{secrets.token_hex(4)}"
        self.path = parent / self.name
        self.lock_path = parent / f"{self.name}{LOCK_SUFFIX}"
        self.committed = False
        self._fd: int | None = None

    def __enter__(self) -> StagingDir:
        self.parent.mkdir(parents=True, exist_ok=True)
        self._fd = _lock_exclusive(self.lock_path, block=True)
        self.path.mkdir()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self.committed:
                shutil.rmtree(self.path, ignore_errors=True)
            self.lock_path.unlink(missing_ok=True)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def sweep_staging(parent: Path, dry_run: bool = False) -> list[str]:
    """Remove the directories and lock files left by dead writers; return the directory names.

    A writer still holding its lock is left alone. With ``dry_run`` nothing is removed.
    """
    if not parent.is_dir():
        return []
    removed: list[str] = []
    bases = {entry.name.removesuffix(LOCK_SUFFIX) for entry in parent.iterdir()}
    for base in sorted(bases):
        lock_path = parent / f"{base}{LOCK_SUFFIX}"
        fd = _lock_exclusive(lock_path, block=False)
        if fd is None:
            continue  # a live writer
        try:
            directory = parent / base
            if directory.exists():
                removed.append(base)
                if not dry_run:
                    shutil.rmtree(directory, ignore_errors=True)
            if not dry_run or not directory.exists():
                lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed
