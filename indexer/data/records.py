"""Raw parsed records: external ids per interaction, before id mapping and splitting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Records", "concat_records"]


def _empty() -> np.ndarray:
    """An empty id array."""
    return np.empty(0, dtype=np.int64)


@dataclass
class Records:
    """Interactions as read from one source, with external ids.

    ``users`` and ``items`` hold one external id per interaction, either as int64 (formats with
    integer ids) or as a numpy unicode array. ``times`` holds a timestamp per interaction
    when the source has one, and ``is_test`` the source's own split when it has one.
    ``extra_users`` and ``extra_items`` declare ids that have no interaction.
    """

    path: str
    users: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None
    is_test: np.ndarray | None = None
    extra_users: np.ndarray = field(default_factory=_empty)
    extra_items: np.ndarray = field(default_factory=_empty)

    @property
    def size(self) -> int:
        """Number of interactions (duplicates included)."""
        return len(self.users)


def _concat_ids(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate id arrays, falling back to strings when kinds differ."""
    non_empty = [a for a in arrays if len(a)]
    if not non_empty:
        return arrays[0][:0] if arrays else _empty()
    if all(a.dtype.kind in "iu" for a in non_empty):
        return np.concatenate([a.astype(np.int64, copy=False) for a in non_empty])
    return np.concatenate([a.astype(str) for a in non_empty])


def concat_records(path: str, parts: list[Records], test_flags: list[bool]) -> Records:
    """Concatenate records of several files, marking each part as train or test."""
    times = None
    if all(p.times is not None for p in parts):
        times = np.concatenate([np.asarray(p.times, dtype=np.float64) for p in parts])
    is_test = np.concatenate(
        [np.full(p.size, flag, dtype=bool) for p, flag in zip(parts, test_flags, strict=True)]
    )
    return Records(
        path=path,
        users=_concat_ids([p.users for p in parts]),
        items=_concat_ids([p.items for p in parts]),
        times=times,
        is_test=is_test,
        extra_users=_concat_ids([p.extra_users for p in parts]),
        extra_items=_concat_ids([p.extra_items for p in parts]),
    )
