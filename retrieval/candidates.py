"""What every searcher shares: result types, exclusions and the Hamming candidate stage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hashrec.retrieval.model import ServingModel

NO_ROWS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class SearchResult:
    """Item rows (int64, -1 where fewer than k exist) and scores (float32, -inf there), (n, k)."""

    items: np.ndarray
    scores: np.ndarray


def pad_result(result: SearchResult, k: int) -> SearchResult:
    """Widen a result to k columns with (-1, -inf)."""
    missing = k - result.items.shape[1]
    if missing <= 0:
        return result
    n = result.items.shape[0]
    items = np.hstack([result.items, np.full((n, missing), -1, dtype=np.int64)])
    scores = np.hstack([result.scores, np.full((n, missing), -np.inf, dtype=np.float32)])
    return SearchResult(items, scores)


def mask_invalid(items: np.ndarray, scores: np.ndarray) -> SearchResult:
    scores = scores.astype(np.float32, copy=False)
    items = np.where(np.isfinite(scores), items, -1).astype(np.int64)
    return SearchResult(items, scores)


Found = tuple[np.ndarray, np.ndarray]
"""One query's answer: valid item rows (int64) and their scores (float32), best first."""


def found_row(result: SearchResult, row: int = 0) -> Found:
    valid = result.items[row] >= 0
    return result.items[row][valid], result.scores[row][valid]


def exclusion_keys(exclude: Sequence[np.ndarray], n: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys ``query * n_items + row`` of every query's exclusions, and each query's count."""
    if n == 1:  # one query (most requests): its own rows, sorted
        keys = np.sort(np.asarray(exclude[0], dtype=np.int64))
        return keys, np.array([len(keys)], np.int64)
    lengths = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=n)
    if not lengths.any():
        return NO_ROWS, lengths
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    return np.sort(owner * n_items + np.concatenate(list(exclude)).astype(np.int64, copy=False)), lengths


def excluded_mask(items: np.ndarray, exclude: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """True where ``items[row, j]`` is in ``exclude[row]``: one sorted-key searchsorted, no row loop."""
    n = items.shape[0]
    keys, _ = exclusion_keys(exclude, n, n_items)
    if not len(keys):
        return np.zeros(items.shape, dtype=bool)
    query = items if n == 1 else np.arange(n, dtype=np.int64)[:, None] * n_items + items
    pos = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return (keys[pos] == query) & (items >= 0)


def sorted_exclusions(
    exclude: Sequence[np.ndarray] | None, n: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exclusions as CSR (indptr, rows int64), each query's rows sorted, for the fused kernel."""
    if exclude is None:
        return np.zeros(n + 1, np.int64), NO_ROWS
    keys, lengths = exclusion_keys(exclude, n, n_items)
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    if n == 1 or not len(keys):
        return ptr, keys
    # keys sort by query first, so subtracting each query's offset in CSR order leaves its rows
    return ptr, keys - np.repeat(np.arange(n, dtype=np.int64), lengths) * n_items


def first_kept(
    items: np.ndarray, distances: np.ndarray, keep: np.ndarray, n_candidates: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first n_candidates kept columns of each row, left-aligned and padded (-1, int32 max)."""
    n = items.shape[0]
    if items.shape[1] >= n_candidates and keep.all():  # nothing excluded or missing: no copy
        return items[:, :n_candidates], distances[:, :n_candidates], np.full(n, n_candidates)
    rank = np.cumsum(keep, axis=1) - 1
    rows, cols = np.nonzero(keep & (rank < n_candidates))
    out_items = np.full((n, n_candidates), -1, dtype=np.int64)
    out_dist = np.full((n, n_candidates), np.iinfo(np.int32).max, dtype=np.int32)
    out_items[rows, rank[rows, cols]] = items[rows, cols]
    out_dist[rows, rank[rows, cols]] = distances[rows, cols]
    return out_items, out_dist, np.minimum(keep.sum(axis=1), n_candidates)


def hamming_candidates(
    model: ServingModel, codes: np.ndarray, n_candidates: int, exclude: Sequence[np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The n_candidates nearest items by Hamming distance that are not excluded.

    The search asks for ``n_candidates`` plus the largest exclusion list, so excluded (seen)
    items never eat the candidate budget. An approximate (IVF) index can return fewer than
    asked when its probed lists run short; those rows are searched again with 4x the probes,
    up to every list (an exact scan), so a row is short only when the catalogue itself is.
    Returns item rows (-1 padded) and distances, nearest first, ties by item row.
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
    fetch = min(model.n_items, n_candidates + extra)
    distances, items = model.hamming_knn(codes, fetch)
    keep = items >= 0
    if extra:
        keep &= ~excluded_mask(items, exclude, model.n_items)  # type: ignore[arg-type]
    out_items, out_dist, counts = first_kept(items, distances, keep, n_candidates)
    if model.index_kind != "ivf":
        return out_items, out_dist
    nprobe, nlist = int(model.binary_index.nprobe), int(model.binary_index.nlist)
    short = (counts < n_candidates) & (items < 0).any(axis=1)
    while nprobe < nlist and short.any():
        nprobe = min(nlist, nprobe * 4)
        rows = np.flatnonzero(short)
        distances, items = model.hamming_knn(codes[rows], fetch, nprobe=nprobe)
        keep = items >= 0
        if extra:
            keep &= ~excluded_mask(items, [exclude[int(r)] for r in rows], model.n_items)  # type: ignore[index]
        out_items[rows], out_dist[rows], counts[rows] = first_kept(items, distances, keep, n_candidates)
        short[rows] = (counts[rows] < n_candidates) & (items < 0).any(axis=1)
    return out_items, out_dist


def user_exclusions(
    seen: Sequence[np.ndarray], extra: np.ndarray, exclude_seen: bool
) -> list[np.ndarray] | None:
    """Per query: its seen rows (if ``exclude_seen``) and the ``extra`` rows; None when nothing is."""
    if exclude_seen:
        return [np.union1d(rows, extra) if len(extra) else rows for rows in seen]
    return [extra] * len(seen) if len(extra) else None


class UserQueries(ABC):
    """The known-user questions every searcher answers; :meth:`search_user` defaults to
    :meth:`search_users` of one row."""

    @abstractmethod
    def search_users(
        self,
        user_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> SearchResult:
        """Top-k for known users by row, excluding their training items (``exclude_seen``) and
        the item rows ``exclude_items`` (every user)."""

    def search_user(
        self,
        row: int,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Found:
        """One known user's :meth:`search_users` answer, valid rows only."""
        result = self.search_users(
            np.array([row]), k, exclude_seen=exclude_seen, exclude_items=exclude_items, candidates=candidates
        )
        return found_row(result)


class CandidateBudget:
    """How many Hamming candidates a two-stage searcher reranks.

    Parameters
    ----------
    oversample : int
        C = k * oversample candidates per query, capped at ``max_candidates``.
    max_candidates : int
        Upper bound on C whatever k is.
    candidates : int, optional
        A fixed C for every k (evaluation uses this), instead of k * oversample.
    """

    def __init__(
        self, oversample: int = 10, max_candidates: int = 5000, candidates: int | None = None
    ) -> None:
        self.oversample = oversample
        self.max_candidates = max_candidates
        self.candidates = candidates

    def n_candidates(self, k: int, candidates: int | None = None) -> int:
        """C for a request of k items: never below k; a request's own ``candidates`` if given,
        else the searcher's fixed one, else k * oversample; never above max_candidates."""
        if candidates is not None:
            return max(k, candidates)
        wanted = self.candidates if self.candidates is not None else k * self.oversample
        return max(k, min(wanted, self.max_candidates))
