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

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, key: str, default: int | None = None) -> int | None:
        """The row of ``key``, or ``default`` when unknown."""
        if len(key) > self._width:  # longer than every id: numpy would truncate it into a match
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
        out = np.full(len(keys), -1, dtype=np.int64)
        fits = np.array([len(k) <= self._width for k in keys], dtype=bool)
        if not len(self._sorted) or not fits.any():
            return out
        wanted = np.asarray([k for k, ok in zip(keys, fits, strict=True) if ok], dtype=self._sorted.dtype)
        pos = np.searchsorted(self._sorted, wanted).clip(max=len(self._sorted) - 1)
        found = self._sorted[pos] == wanted
        out[fits] = np.where(found, self._order[pos], -1)
        return out
