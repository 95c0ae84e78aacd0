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
    ids : ndarray of str (unicode, format 1) or bytes (UTF-8, format 2)
        The id of each row (may be mmapped; it is not modified).
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = ids
        self._order = np.argsort(ids, kind="stable").astype(np.int64)
        self._sorted = ids[self._order]
        kind = self._sorted.dtype.kind
        self._bytes = kind == "S"
        self._width = {"U": self._sorted.dtype.itemsize // 4, "S": self._sorted.dtype.itemsize}.get(kind, 0)
        if self._width:
            # One character wider than every id: a longer key keeps a character that no id has, so
            # it cannot be truncated into a match; and keys of this same dtype are searched without
            # numpy converting the whole array to a common one on every call.
            self._sorted = self._sorted.astype(
                f"S{self._width + 1}" if self._bytes else f"<U{self._width + 1}"
            )

    def _key(self, key: str) -> str | bytes | None:
        """``key`` as the sorted array holds it; None where no id can equal it."""
        if key.endswith("\x00"):
            # numpy strips a trailing NUL, so it would match the id without it (ids cannot end in NUL)
            return None
        if not self._bytes:
            return key if len(key) <= self._width else None
        try:
            encoded = key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no stored (UTF-8) id has one
            return None
        return encoded if len(encoded) <= self._width else None

    def labels(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows`` as str."""
        values = self.ids[np.asarray(rows, dtype=np.int64)].tolist()
        return [v.decode("utf-8") for v in values] if self._bytes else values

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, key: str, default: int | None = None) -> int | None:
        """The row of ``key``, or ``default`` when unknown."""
        wanted = self._key(key)
        if wanted is None:
            # longer than every id, or ending in NUL: numpy would truncate or strip it into a match
            return default
        pos = int(self._sorted.searchsorted(wanted))  # the method: np.searchsorted adds a wrapper call
        if pos < len(self._sorted) and self._sorted[pos] == wanted:
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
        converted = [self._key(key) for key in keys]
        impossible = np.array([c is None for c in converted])
        filler = b"" if self._bytes else ""
        wanted = np.array([filler if c is None else c for c in converted], dtype=self._sorted.dtype)
        pos = self._sorted.searchsorted(wanted)
        np.minimum(pos, n - 1, out=pos)
        found = np.where(self._sorted[pos] == wanted, self._order[pos], -1)
        found[impossible] = -1  # as get(): too long, NUL-ended or unencodable never match
        return found
