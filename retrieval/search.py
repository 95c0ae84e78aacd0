"""Top-K search over a ServingModel: Hamming candidates, exact rerank, and the exact reference.

numpy and faiss, plus the numba kernels (``retrieval.kernels``) when numba is installed and the
index is flat. The indexer's evaluation calls this same code, so what is measured offline is what
is served.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
from hashrec.retrieval.candidates import (
    NO_ROWS,
    CandidateBudget,
    Found,
    SearchResult,
    UserQueries,
    found_row,
    hamming_candidates,
    mask_invalid,
    pad_result,
    sorted_exclusions,
    user_exclusions,
)
from hashrec.retrieval.kernels import (
    FusedArrays,
    two_stage_kernel,
    two_stage_query_kernel,
    two_stage_user_kernel,
)
from hashrec.retrieval.model import ServingModel, rows_sorted
from hashrec.retrieval.query_codes import query_codes
from hashrec.retrieval.topk import top_k
from hashrec.retrieval.walk_search import (
    WalkExactSearcher,
    WalkHammingSearcher,
    WalkSearcher,
    WalkTwoStageSearcher,
)


def pack_query_codes(model: ServingModel, vectors: np.ndarray) -> np.ndarray:
    """Binary codes for query (user-side) vectors by the artifact's own quantizer rule."""
    if model.code_projection is None:
        raise ValueError(f"model {model.version} has no code_projection; it cannot encode new queries")
    return query_codes(vectors, model.code_projection, model.code_transform)


def history_vector(model: ServingModel, item_rows: np.ndarray) -> np.ndarray:
    """A visitor's query vector from recent items: the degree-normalized sum of their vectors.

    Each item is weighted 1 / degree ** ``model.history_exponent``: the closed form's own user
    rule (so a visitor with a user's history gets that user's vector), LightGCN's 1 / sqrt(degree)
    for trained encoders. The overall scale does not change an inner-product ranking.
    """
    degree = np.maximum(np.asarray(model.item_popularity[item_rows], dtype=np.float64), 1.0)
    vectors = np.asarray(model.item_embeddings[item_rows], dtype=np.float32)
    weights = (degree**-model.history_exponent).astype(np.float32)
    return (vectors * weights[:, None]).sum(axis=0, keepdims=True)


class Searcher(UserQueries):
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
        extra = np.asarray(exclude_items, dtype=np.int64) if exclude_items is not None else NO_ROWS
        seen = [self.model.seen(int(r)) for r in rows] if exclude_seen else [NO_ROWS] * len(rows)
        exclude = user_exclusions(seen, extra, exclude_seen)
        return self.search(
            np.asarray(self.model.user_embeddings[rows], dtype=np.float32),
            np.asarray(self.model.user_codes[rows], dtype=np.uint8),
            k,
            exclude=exclude,
            candidates=candidates,
        )

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
        return found_row(result)


class ExactSearcher(Searcher):
    """Full-precision inner product over every item: the reference ranking."""

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        scores = vectors @ np.asarray(self.model.item_embeddings).T
        if exclude is not None:
            for row, items in enumerate(exclude):
                scores[row, items] = -np.inf
        items, values = top_k(scores, k)
        return pad_result(mask_invalid(items, values), k)


class HammingSearcher(Searcher):
    """Hamming distance alone: the first stage's own ranking (scores are -distance)."""

    def search(self, vectors, codes, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        items, distances = hamming_candidates(self.model, codes, k, exclude)
        scores = np.where(items >= 0, -distances.astype(np.float32), -np.inf)
        return mask_invalid(items, scores)


class TwoStageSearcher(Searcher, CandidateBudget):
    """Hamming top-C candidates, then an exact inner-product rerank of those C.

    Two implementations answer the same: :class:`FusedSearcher` and :class:`NumpySearcher`;
    :func:`two_stage_searcher` picks the one that serves a model best, once, at load.

    Parameters
    ----------
    model : ServingModel
    oversample, max_candidates, candidates
        How many candidates are reranked (``retrieval.candidates.CandidateBudget``).
    """

    def __init__(
        self,
        model: ServingModel,
        oversample: int = 10,
        max_candidates: int = 5000,
        candidates: int | None = None,
    ) -> None:
        Searcher.__init__(self, model)
        CandidateBudget.__init__(self, oversample, max_candidates, candidates)
        self._prepare()

    def _prepare(self) -> None:
        """Lay the model's arrays out for this implementation, once (nothing by default)."""

    def search_history(
        self,
        item_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Found:
        """Top-k for a visitor known only by recent item rows, by the model's own query rule."""
        vector = history_vector(self.model, item_rows)
        code = pack_query_codes(self.model, vector)
        extra = exclude_items if exclude_items is not None else NO_ROWS
        exclude = np.concatenate([item_rows, extra]) if exclude_seen else extra  # search_query sorts it
        return self.search_query(vector[0], code[0], k, exclude=exclude, candidates=candidates)

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
        return pad_result(mask_invalid(items, values), k)


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
        ptr, rows = sorted_exclusions(exclude, len(codes), self.model.n_items)
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
        rows = NO_ROWS if exclude is None else np.unique(np.asarray(exclude, dtype=np.int64))
        return two_stage_query_kernel(self.arrays, code, vector, k, self.n_candidates(k, candidates), rows)


#: A served (two-stage) searcher of either layout: what ``retrieval.recommender`` asks.
Searchers = TwoStageSearcher | WalkTwoStageSearcher


def served_searcher(
    model: ServingModel, oversample: int = 10, max_candidates: int = 5000, candidates: int | None = None
) -> Searchers:
    """The two-stage searcher of ``model``'s layout: the walk's, or :func:`two_stage_searcher`.

    Parameters are those of :class:`TwoStageSearcher`.
    """
    if model.walk is not None:
        return WalkTwoStageSearcher(model, oversample, max_candidates, candidates)
    return two_stage_searcher(model, oversample, max_candidates, candidates)


def two_stage_searcher(
    model: ServingModel, oversample: int = 10, max_candidates: int = 5000, candidates: int | None = None
) -> TwoStageSearcher:
    """The two-stage searcher that serves an embedding-layout ``model`` best: fused where its
    scan is numba's, else numpy (ValueError for the walk layout: :func:`served_searcher`).

    Parameters are those of :class:`TwoStageSearcher`.
    """
    if model.walk is not None:
        raise ValueError(f"model {model.version} has the walk layout: search it with served_searcher")
    kind = FusedSearcher if FusedSearcher.serves(model) else NumpySearcher
    return kind(model, oversample, max_candidates, candidates)


def reference_searchers(model: ServingModel, candidates: int) -> dict[str, Searcher | WalkSearcher]:
    """The full-precision, Hamming-only and served searchers of ``model``'s layout, by those names."""
    if model.walk is not None:
        return {
            "full": WalkExactSearcher(model),
            "hamming": WalkHammingSearcher(model),
            "served": WalkTwoStageSearcher(model, candidates=candidates),
        }
    return {
        "full": ExactSearcher(model),
        "hamming": HammingSearcher(model),
        "served": two_stage_searcher(model, candidates=candidates),
    }
