"""External id -> row lookup without a Python dict per worker.

A dict of a million string keys costs ~100 MiB of private memory in every worker process; a
sorted copy of the (mmapped) id array plus the argsort costs 8 bytes per id and answers a
lookup by binary search in microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class IdIndex:
    """Rows of external ids.

    Parameters
    ----------
    ids : ndarray of str
        The id of each row (may be mmapped; it is not modified).
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self._order = np.argsort(ids, kind="stable").astype(np.int64)
        self._sorted = ids[self._order]
        self._width = self._sorted.dtype.itemsize // 4 if self._sorted.dtype.kind == "U" else 0
        if self._width:
            # One character wider than every id: a longer key keeps a character that no id has, so
            # it cannot be truncated into a match; and keys of this same dtype are searched without
            # numpy converting the whole array to a common one on every call.
            self._sorted = self._sorted.astype(f"<U{self._width + 1}")

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, key: str, default: int | None = None) -> int | None:
        """The row of ``key``, or ``default`` when unknown."""
        if len(key) > self._width or key.endswith("\x00"):
            # longer than every id, or ending in NUL: numpy would truncate or strip it into a match
            # (its fixed-width strings, the artifact's id format, cannot hold a trailing NUL)
            return default
        pos = int(self._sorted.searchsorted(key))  # the method: np.searchsorted adds a wrapper call
        if pos < len(self._sorted) and self._sorted[pos] == key:
            return int(self._order[pos])
        return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __getitem__(self, key: str) -> int:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def rows(self, keys: Iterable[str]) -> np.ndarray:
        """Rows of many keys at once, -1 for unknown ones (vectorized)."""
        keys = list(keys)
        n = len(self._sorted)
        if not n or not self._width or not keys:
            return np.full(len(keys), -1, dtype=np.int64)
        wanted = np.array(keys, dtype=self._sorted.dtype)
        pos = self._sorted.searchsorted(wanted)
        np.minimum(pos, n - 1, out=pos)
        found = np.where(self._sorted[pos] == wanted, self._order[pos], -1)
        if any(key.endswith("\x00") for key in keys):  # stripped by numpy: as get(), never a match
            found[[key.endswith("\x00") for key in keys]] = -1
        return found
