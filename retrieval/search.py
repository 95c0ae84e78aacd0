"""Top-K search over a ServingModel: Hamming candidates, exact rerank, and the exact reference.

numpy and faiss, plus the numba kernels (``retrieval.kernels``) when numba is installed and the
index is flat. The indexer's evaluation calls this same code, so what is measured offline is what
is served.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hashrec.retrieval.kernels import (
    FusedArrays,
    two_stage_kernel,
    two_stage_query_kernel,
    two_stage_user_kernel,
)
from hashrec.retrieval.model import ServingModel, rows_sorted
from hashrec.retrieval.topk import top_k

_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class SearchResult:
    """Item rows (int64, -1 where fewer than k exist) and scores (float32, -inf there), (n, k)."""

    items: np.ndarray
    scores: np.ndarray


def _pad(result: SearchResult, k: int) -> SearchResult:
    """Widen a result to k columns with (-1, -inf)."""
    missing = k - result.items.shape[1]
    if missing <= 0:
        return result
    n = result.items.shape[0]
    items = np.hstack([result.items, np.full((n, missing), -1, dtype=np.int64)])
    scores = np.hstack([result.scores, np.full((n, missing), -np.inf, dtype=np.float32)])
    return SearchResult(items, scores)


def _mask_invalid(items: np.ndarray, scores: np.ndarray) -> SearchResult:
    scores = scores.astype(np.float32, copy=False)
    items = np.where(np.isfinite(scores), items, -1).astype(np.int64)
    return SearchResult(items, scores)


Found = tuple[np.ndarray, np.ndarray]
"""One query's answer: valid item rows (int64) and their scores (float32), best first."""


def _found(result: SearchResult, row: int = 0) -> Found:
    valid = result.items[row] >= 0
    return result.items[row][valid], result.scores[row][valid]


class Searcher(ABC):
    """One way of answering top-k for query vectors and codes.

    Subclasses implement :meth:`search`; the other three questions default to it. Every
    implementation passes the shared contract in ``tests/retrieval/test_searchers.py``.
    """

    def __init__(self, model: ServingModel) -> None:
        self.model = model

    @abstractmethod
    def search(
        self,
        vectors: np.ndarray,
        codes: np.ndarray,
        k: int,
        *,
        exclude: Sequence[np.ndarray] | None = None,
        candidates: int | None = None,
    ) -> SearchResult:
        """Top-k items for each query.

        Parameters
        ----------
        vectors : ndarray of float32, shape (n, dim)
            Full-precision query vectors (used by exact scoring and rerank).
        codes : ndarray of uint8, shape (n, bits / 8)
            Binary query codes (used by Hamming search).
        k : int
            Number of items per query.
        exclude : sequence of int arrays, optional
            Per query, item rows that must not be returned (training items).
        candidates : int, optional
            Two-stage searchers: C for this call; the others ignore it.

        Returns
        -------
        SearchResult
        """

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
        rows = np.asarray(user_rows, dtype=np.int64)
        extra = np.asarray(exclude_items, dtype=np.int64) if exclude_items is not None else _EMPTY
        exclude = None
        if exclude_seen:
            seen = [self.model.seen(int(r)) for r in rows]
            exclude = [np.union1d(s, extra) if len(extra) else s for s in seen]
        elif len(extra):
            exclude = [extra] * len(rows)
        return self.search(
            np.asarray(self.model.user_embeddings[rows], dtype=np.float32),
            np.asarray(self.model.user_codes[rows], dtype=np.uint8),
            k,
            exclude=exclude,
            candidates=candidates,
        )

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
        return _found(result)

    def search_query(
        self,
        vector: np.ndarray,
        code: np.ndarray,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Found:
        """One query's :meth:`search` answer by its float32 ``vector`` (dim,) and packed ``code``,
        excluding the item rows ``exclude``; valid rows only."""
        rows = [np.unique(np.asarray(exclude, dtype=np.int64))] if exclude is not None else None
        result = self.search(vector[None, :], code[None, :], k, exclude=rows, candidates=candidates)
        return _found(result)


class ExactSearcher(Searcher):
    """Full-precision inner product over every item: the reference ranking."""

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        scores = vectors @ np.asarray(self.model.item_embeddings).T
        if exclude is not None:
            for row, items in enumerate(exclude):
                scores[row, items] = -np.inf
        items, values = top_k(scores, k)
        return _pad(_mask_invalid(items, values), k)


def _exclusion_keys(exclude: Sequence[np.ndarray], n: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys ``query * n_items + row`` of every query's exclusions, and each query's count."""
    if n == 1:  # one query (most requests): its own rows, sorted
        keys = np.sort(np.asarray(exclude[0], dtype=np.int64))
        return keys, np.array([len(keys)], np.int64)
    lengths = np.fromiter((len(e) for e in exclude), dtype=np.int64, count=n)
    if not lengths.any():
        return _EMPTY, lengths
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    return np.sort(owner * n_items + np.concatenate(list(exclude)).astype(np.int64, copy=False)), lengths


def _excluded_mask(items: np.ndarray, exclude: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """True where ``items[row, j]`` is in ``exclude[row]``: one sorted-key searchsorted, no row loop."""
    n = items.shape[0]
    keys, _ = _exclusion_keys(exclude, n, n_items)
    if not len(keys):
        return np.zeros(items.shape, dtype=bool)
    query = items if n == 1 else np.arange(n, dtype=np.int64)[:, None] * n_items + items
    pos = np.searchsorted(keys, query).clip(max=len(keys) - 1)
    return (keys[pos] == query) & (items >= 0)


def _sorted_exclusions(
    exclude: Sequence[np.ndarray] | None, n: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exclusions as CSR (indptr, rows int64), each query's rows sorted, for the fused kernel."""
    if exclude is None:
        return np.zeros(n + 1, np.int64), _EMPTY
    keys, lengths = _exclusion_keys(exclude, n, n_items)
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    if n == 1 or not len(keys):
        return ptr, keys
    # keys sort by query first, so subtracting each query's offset in CSR order leaves its rows
    return ptr, keys - np.repeat(np.arange(n, dtype=np.int64), lengths) * n_items


def _first_kept(
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
        keep &= ~_excluded_mask(items, exclude, model.n_items)  # type: ignore[arg-type]
    out_items, out_dist, counts = _first_kept(items, distances, keep, n_candidates)
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
            keep &= ~_excluded_mask(items, [exclude[int(r)] for r in rows], model.n_items)  # type: ignore[index]
        out_items[rows], out_dist[rows], counts[rows] = _first_kept(items, distances, keep, n_candidates)
        short[rows] = (counts[rows] < n_candidates) & (items < 0).any(axis=1)
    return out_items, out_dist


class HammingSearcher(Searcher):
    """Hamming distance alone: the first stage's own ranking (scores are -distance)."""

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        items, distances = hamming_candidates(self.model, codes, k, exclude)
        scores = np.where(items >= 0, -distances.astype(np.float32), -np.inf)
        return _mask_invalid(items, scores)


class TwoStageSearcher(Searcher):
    """Hamming top-C candidates, then an exact inner-product rerank of those C.

    Two implementations answer the same: :class:`FusedSearcher` and :class:`NumpySearcher`;
    :func:`two_stage_searcher` picks the one that serves a model best, once, at load.

    Parameters
    ----------
    model : ServingModel
    oversample : int
        C = k * oversample candidates per query, capped at ``max_candidates``.
    max_candidates : int
        Upper bound on C whatever k is.
    candidates : int, optional
        A fixed C for every k (evaluation uses this), instead of k * oversample.
    """

    def __init__(
        self,
        model: ServingModel,
        oversample: int = 10,
        max_candidates: int = 5000,
        candidates: int | None = None,
    ) -> None:
        super().__init__(model)
        self.oversample = oversample
        self.max_candidates = max_candidates
        self.candidates = candidates
        self._prepare()

    def _prepare(self) -> None:
        """Lay the model's arrays out for this implementation, once (nothing by default)."""

    def n_candidates(self, k: int, candidates: int | None = None) -> int:
        """C for a request of k items: never below k; a request's own ``candidates`` if given,
        else the searcher's, never above max_candidates."""
        if candidates is not None:
            return max(k, candidates)
        wanted = self.candidates if self.candidates is not None else k * self.oversample
        return max(k, min(wanted, self.max_candidates))

    def _query(self, vectors: np.ndarray) -> np.ndarray:
        """Query vectors as the rerank scores them: float32, times the int8 rows' scales."""
        query = vectors.astype(np.float32, copy=False)
        return query * self.model.rerank_scale if self.model.rerank_scale is not None else query


class NumpySearcher(TwoStageSearcher):
    """The two stages in faiss (or the model's numba scan) and numpy: any index, any install."""

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        query = self._query(vectors)
        cand, _ = hamming_candidates(self.model, codes, self.n_candidates(k, candidates), exclude)
        valid = cand >= 0
        all_valid = bool(valid.all())
        # float32, float16 or int8 rerank vectors (ServingModel.rerank_dtype); scored in float32.
        targets = self.model.rerank_items[(cand if all_valid else np.where(valid, cand, 0)).ravel()]
        targets = targets.astype(np.float32, copy=False).reshape(*cand.shape, -1)
        scores = np.matmul(targets, query[:, :, None])[:, :, 0]
        if not all_valid:
            scores[~valid] = -np.inf
        positions, values = top_k(scores, k)
        items = cand[np.arange(len(cand))[:, None], positions]
        return _pad(_mask_invalid(items, values), k)


class FusedSearcher(TwoStageSearcher):
    """Each query in one compiled call (scan, exclusions, first C kept, rerank, top-k).

    Needs a model whose scan is numba's (:meth:`serves`); its arrays are laid out for the kernels
    once, here. A single request pays none of :class:`NumpySearcher`'s per-step numpy work.
    """

    @staticmethod
    def serves(model: ServingModel) -> bool:
        """True where the fused kernels can search ``model``: numba installed, a flat index."""
        return model.scan_words is not None

    def _prepare(self) -> None:
        model = self.model
        if not self.serves(model):
            raise ValueError(f"model {model.version}: the fused searcher needs numba and a flat index")
        assert model.scan_words is not None
        seen_indices = model.seen_indices
        if not rows_sorted(model.seen_indptr, seen_indices):
            # The kernel binary-searches each user's seen rows; the format promises them sorted,
            # an artifact that breaks the promise is served from a sorted private copy.
            seen_indices = np.array(seen_indices)
            for user in range(model.n_users):
                lo, hi = model.seen_indptr[user], model.seen_indptr[user + 1]
                seen_indices[lo:hi].sort()
        rerank = model.rerank_items
        dim = model.item_embeddings.shape[1]
        self.arrays = FusedArrays(
            item_words=model.scan_words,
            user_words=np.ascontiguousarray(model.user_codes, dtype=np.uint8).view(np.uint64),
            user_vectors=model.user_embeddings,
            # ones for float rerank rows: x * 1 is exact
            query_scale=model.rerank_scale if model.rerank_scale is not None else np.ones(dim, np.float32),
            seen_indptr=model.seen_indptr,
            seen_indices=seen_indices,
            rerank_rows=rerank.view(np.uint16) if rerank.dtype == np.float16 else rerank,
            prefetch_bytes=model.scan_prefetch_bytes,
        )

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        ptr, rows = _sorted_exclusions(exclude, len(codes), self.model.n_items)
        items, scores = two_stage_kernel(
            self.arrays.item_words,
            codes,
            np.ascontiguousarray(self._query(vectors)),
            self.arrays.rerank_rows,
            k,
            self.n_candidates(k, candidates),
            ptr,
            rows,
            prefetch_bytes=self.arrays.prefetch_bytes,
        )
        return SearchResult(items, scores)

    def search_user(self, row, k, *, exclude_seen=True, exclude_items=None, candidates=None) -> Found:  # type: ignore[no-untyped-def]
        extra = None
        if exclude_items is not None and len(exclude_items):
            extra = np.unique(np.asarray(exclude_items, dtype=np.int64))
        n_candidates = self.n_candidates(k, candidates)
        return two_stage_user_kernel(self.arrays, row, k, n_candidates, exclude_seen, extra)

    def search_query(self, vector, code, k, *, exclude=None, candidates=None) -> Found:  # type: ignore[no-untyped-def]
        rows = _EMPTY if exclude is None else np.unique(np.asarray(exclude, dtype=np.int64))
        return two_stage_query_kernel(self.arrays, code, vector, k, self.n_candidates(k, candidates), rows)


def two_stage_searcher(
    model: ServingModel, oversample: int = 10, max_candidates: int = 5000, candidates: int | None = None
) -> TwoStageSearcher:
    """The two-stage searcher that serves ``model`` best: fused where its scan is numba's, else numpy.

    Parameters are those of :class:`TwoStageSearcher`.
    """
    kind = FusedSearcher if FusedSearcher.serves(model) else NumpySearcher
    return kind(model, oversample, max_candidates, candidates)
