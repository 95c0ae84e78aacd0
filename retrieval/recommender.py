"""Answering queries against one loaded model: users, visitors by history, batches, similar items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import Searchers, hamming_candidates
from hashrec.retrieval.topk import top_k

Pairs = list[tuple[str, float]]


@dataclass(frozen=True)
class Recommender:
    """Query logic for one model; stateless, so it is swapped with the model on reload."""

    model: ServingModel
    searcher: Searchers

    def _pairs(self, items: np.ndarray, scores: np.ndarray) -> Pairs:
        """(id, score) pairs of one padded result row."""
        valid = items >= 0
        ids = self.model.item_labels(items[valid])
        return list(zip(ids, scores[valid].astype(float).tolist(), strict=True))

    def _found_pairs(self, items: np.ndarray, scores: np.ndarray) -> Pairs:
        """Pairs of a single-query kernel's answer (valid rows only, so no mask)."""
        return list(zip(self.model.item_labels(items), scores.tolist(), strict=True))

    def for_users(
        self,
        user_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> list[Pairs]:
        """Two-stage top-k for known users, in one batched search."""
        result = self.searcher.search_users(
            user_rows, k, exclude_seen=exclude_seen, exclude_items=exclude_items, candidates=candidates
        )
        return [self._pairs(result.items[i], result.scores[i]) for i in range(len(user_rows))]

    def for_user(
        self,
        row: int,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Pairs:
        """One known user's two-stage top-k: what ``for_users`` answers for that user."""
        found = self.searcher.search_user(
            row, k, exclude_seen=exclude_seen, exclude_items=exclude_items, candidates=candidates
        )
        return self._found_pairs(*found)

    def for_history(
        self,
        item_rows: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        candidates: int | None = None,
    ) -> Pairs:
        """Two-stage top-k for a visitor known only by recent items."""
        found = self.searcher.search_history(
            item_rows, k, exclude_seen=exclude_seen, exclude_items=exclude_items, candidates=candidates
        )
        return self._found_pairs(*found)

    def popular(self, k: int, *, exclude: Sequence[int] | np.ndarray = ()) -> Pairs:
        """The most popular items (the fallback for unknown users), scored by training count."""
        order = self.model.popular_order
        if len(exclude):
            order = order[~np.isin(order, np.asarray(exclude))]
        rows = order[:k]
        return self._pairs(rows, np.asarray(self.model.item_popularity[rows], dtype=np.float32))

    def similar(self, item_row: int, k: int, *, candidates: int | None = None) -> Pairs:
        """Items nearest to an item: Hamming candidates on item codes, cosine rerank; under the
        walk layout, the walk from that one item (its query code, its walk scores)."""
        model = self.model
        if model.walk is not None:
            return self._found_pairs(
                *self.searcher.search_history(np.array([item_row]), k, candidates=candidates)
            )
        c = self.searcher.n_candidates(k, candidates)
        codes = np.asarray(model.item_codes[[item_row]], dtype=np.uint8)
        cand, _ = hamming_candidates(model, codes, c, [np.array([item_row])])
        valid = cand[0] >= 0
        rows = cand[0][valid]
        query = np.asarray(model.item_embeddings[item_row], dtype=np.float32)
        targets = np.asarray(model.item_embeddings[rows], dtype=np.float32)
        norms = np.linalg.norm(targets, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        cosine = (targets @ query / np.maximum(norms, 1e-12))[None, :]
        positions, values = top_k(cosine, k)
        return self._pairs(rows[positions[0]], values[0])
