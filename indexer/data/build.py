"""Turn Records into Interactions: dense id maps, deduplication and the train/test split."""

from __future__ import annotations

import re

import numpy as np

from .errors import DataError
from .interactions import Interactions, pairs_to_csr
from .records import Records
from .split import random_test_mask, temporal_test_mask

__all__ = ["build_interactions", "encode_ids"]

_INT_RE = re.compile(r"[+-]?[0-9]+")


def _as_int(text: str) -> int | None:
    """The integer a string spells, or None."""
    return int(text) if _INT_RE.fullmatch(text) else None


def encode_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map external ids to dense indices.

    Parameters
    ----------
    ids : numpy.ndarray
        int64 or unicode external ids, repeats allowed.

    Returns
    -------
    unique : numpy.ndarray
        Unicode array of distinct ids in dense order: by integer value when every id is an
        integer, else lexicographic.
    codes : numpy.ndarray
        Dense index of each input id.
    """
    if ids.dtype.kind in "iu":
        unique, codes = np.unique(ids, return_inverse=True)
        return unique.astype(str), codes.reshape(-1)
    unique, codes = np.unique(ids.astype(str, copy=False), return_inverse=True)
    codes = codes.reshape(-1)
    values = [_as_int(text) for text in unique.tolist()]
    if unique.size and all(v is not None for v in values):
        order = sorted(range(len(values)), key=lambda k: (values[k], unique[k]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        unique = unique[order]
        codes = rank[codes]
    return unique, codes


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (sort based, fast for int64)."""
    ordered = np.sort(keys)
    if len(ordered) < 2:
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def _unique_pairs(keys: np.ndarray, times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted unique pair keys and, when given, each pair's earliest time."""
    if times is None:
        return _sorted_unique(keys), None
    order = np.lexsort((times, keys))
    sorted_keys = keys[order]
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return sorted_keys[first], times[order][first]


def build_interactions(
    records: Records,
    *,
    split: str,
    test_fraction: float,
    seed: int | np.random.Generator,
    source: str,
) -> Interactions:
    """Build Interactions from records.

    Parameters
    ----------
    records : Records
        Parsed interactions with external ids.
    split : {"auto", "files", "random", "temporal"}
        ``"auto"`` uses the records' own split when they have one, else ``"random"``.
    test_fraction : float
        Share of each user's items held out by the random and temporal splits.
    seed : int or numpy.random.Generator
        Seed (or generator) for the random split.
    source : str
        Description stored in ``Interactions.source``.

    Returns
    -------
    Interactions

    Raises
    ------
    DataError
        No interactions, or a split the data cannot support.
    """
    path = records.path
    if records.size == 0:
        raise DataError(path, "no interactions found")
    if split == "auto":
        split = "files" if records.is_test is not None else "random"
    if split == "files" and records.is_test is None:
        raise DataError(path, "split='files' needs data with its own train/test split")
    if split == "temporal" and records.times is None:
        raise DataError(path, "split='temporal' needs timestamps, and this data has none")

    user_ids, user_codes = encode_ids(_join(records.users, records.extra_users))
    item_ids, item_codes = encode_ids(_join(records.items, records.extra_items))
    n_users, n_items = len(user_ids), len(item_ids)
    rows = user_codes[: records.size].astype(np.int64)
    cols = item_codes[: records.size].astype(np.int64)
    shape = (n_users, n_items)

    if split == "files":
        assert records.is_test is not None
        matrices = []
        for mask in (~records.is_test, records.is_test):
            keys = _sorted_unique(rows[mask] * n_items + cols[mask])
            matrices.append(pairs_to_csr(keys // n_items, keys % n_items, shape))
        train, test = matrices
    else:
        times = None if split == "random" else np.asarray(records.times, dtype=np.float64)
        keys, pair_times = _unique_pairs(rows * n_items + cols, times)
        pair_rows, pair_cols = keys // n_items, keys % n_items
        if split == "random":
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            in_test = random_test_mask(pair_rows, n_users, test_fraction, rng)
        else:
            assert pair_times is not None
            in_test = temporal_test_mask(pair_rows, pair_cols, pair_times, n_users, test_fraction)
        train = pairs_to_csr(pair_rows[~in_test], pair_cols[~in_test], shape)
        test = pairs_to_csr(pair_rows[in_test], pair_cols[in_test], shape)
    return Interactions(
        user_ids=user_ids, item_ids=item_ids, train=train, test=test, source=source, split=split
    )


def _join(ids: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Interaction ids followed by declared-only ids, in one dtype."""
    if len(extra) == 0:
        return ids
    if ids.dtype.kind in "iu" and extra.dtype.kind in "iu":
        return np.concatenate([ids.astype(np.int64), extra.astype(np.int64)])
    return np.concatenate([ids.astype(str), extra.astype(str)])
