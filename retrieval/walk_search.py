"""Searchers of the walk layout: a query is a history, scored by ``retrieval.walk.GraphWalk``.

The same three rankings as the embedding layout's searchers (``retrieval.search``): the exact
walk over every item, the Hamming ranking alone, and the served two stages (Hamming top-C, then
the exact walk score of those C). A known user is searched as the history it has in the graph,
so a visitor with that history gets the same answer by the same code.
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
    user_exclusions,
)
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.topk import top_k
from hashrec.retrieval.walk import GraphWalk


class WalkSearcher(UserQueries):
    """One way of answering top-k for histories; subclasses implement :meth:`search_histories`."""

    def __init__(self, model: ServingModel) -> None:
        if model.walk is None:
            raise ValueError(f"model {model.version} has the {model.layout} layout, not walk")
        self.model = model
        self.walk: GraphWalk = model.walk

    @abstractmethod
    def search_histories(
        self,
        histories: Sequence[np.ndarray],
        k: int,
        *,
        exclude: Sequence[np.ndarray] | None = None,
        candidates: int | None = None,
    ) -> SearchResult:
        """Top-k items for each history (item rows), never an item of ``exclude[n]`` for query n."""

    def search_users(
        self,
        user_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> SearchResult:
        """Top-k for known users by row: their training items are the history."""
        rows = np.asarray(user_rows, dtype=np.int64)
        histories = [self.model.seen(int(r)) for r in rows]
        extra = np.asarray(exclude_items, dtype=np.int64) if exclude_items is not None else NO_ROWS
        exclude = user_exclusions(histories, extra, exclude_seen)
        return self.search_histories(histories, k, exclude=exclude, candidates=candidates)

    def search_history(
        self,
        item_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Found:
        """A visitor's answer for recent item rows: what a user with that history gets."""
        history = np.unique(np.asarray(item_rows, dtype=np.int64))
        extra = np.asarray(exclude_items, dtype=np.int64) if exclude_items is not None else NO_ROWS
        exclude = user_exclusions([history], extra, exclude_seen)
        return found_row(self.search_histories([history], k, exclude=exclude, candidates=candidates))


class WalkExactSearcher(WalkSearcher):
    """The walk scored over every item: the reference ranking."""

    def search_histories(self, histories, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        scores = np.stack([self.walk.score_all(h) for h in histories]) if len(histories) else np.empty((0, 0))
        if exclude is not None:
            for row, items in enumerate(exclude):
                scores[row, items] = -np.inf
        items, values = top_k(scores, min(k, self.model.n_items))
        return pad_result(mask_invalid(items, values), k)


class WalkHammingSearcher(WalkSearcher):
    """Hamming distance alone between history codes and item codes (scores are -distance)."""

    def search_histories(self, histories, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        codes = _codes(self.walk, histories, self.model.bits)
        items, distances = hamming_candidates(self.model, codes, k, exclude)
        scores = np.where(items >= 0, -distances.astype(np.float32), -np.inf)
        return mask_invalid(items, scores)


class WalkTwoStageSearcher(WalkSearcher, CandidateBudget):
    """Hamming top-C candidates for the history's code, then the exact walk score of those C.

    Parameters: the model and the candidate budget (``retrieval.candidates.CandidateBudget``).
    """

    def __init__(
        self,
        model: ServingModel,
        oversample: int = 10,
        max_candidates: int = 5000,
        candidates: int | None = None,
    ) -> None:
        WalkSearcher.__init__(self, model)
        CandidateBudget.__init__(self, oversample, max_candidates, candidates)

    def search_histories(self, histories, k, *, exclude=None, candidates=None) -> SearchResult:  # type: ignore[no-untyped-def]
        codes = _codes(self.walk, histories, self.model.bits)
        cand, _ = hamming_candidates(self.model, codes, self.n_candidates(k, candidates), exclude)
        scores = np.full(cand.shape, -np.inf, dtype=np.float32)
        for row, history in enumerate(histories):
            valid = cand[row] >= 0
            scores[row, valid] = self.walk.score(history, cand[row, valid])
        positions, values = top_k(scores, min(k, cand.shape[1]))
        items = cand[np.arange(len(cand))[:, None], positions]
        return pad_result(mask_invalid(items, values), k)


def _codes(walk: GraphWalk, histories: Sequence[np.ndarray], bits: int) -> np.ndarray:
    """Packed query codes (n, bits / 8) of histories."""
    if not len(histories):
        return np.empty((0, bits // 8), np.uint8)
    return np.vstack([walk.query_code(h) for h in histories])
