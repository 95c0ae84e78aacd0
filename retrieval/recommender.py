"""Answering queries against one loaded model: users, visitors by history, batches, similar items."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.query_codes import query_codes
from hashrec.retrieval.search import TwoStageSearcher, hamming_candidates
from hashrec.retrieval.topk import top_k

Pairs = list[tuple[str, float]]


def pack_query_codes(model: ServingModel, vectors: np.ndarray) -> np.ndarray:
    """Binary codes for query (user-side) vectors by the artifact's own quantizer rule."""
    if model.code_projection is None:
        raise ValueError(f"model {model.version} has no code_projection; it cannot encode new queries")
    return query_codes(vectors, model.code_projection, model.code_transform)


def history_vector(model: ServingModel, item_rows: np.ndarray) -> np.ndarray:
    """A visitor's query vector from recent items: the degree-normalized sum of their vectors.

    This is LightGCN's aggregation rule (each neighbour weighted 1 / sqrt(degree)); the overall
    scale does not change an inner-product ranking.
    """
    degree = np.maximum(np.asarray(model.item_popularity[item_rows], dtype=np.float32), 1.0)
    vectors = np.asarray(model.item_embeddings[item_rows], dtype=np.float32)
    return (vectors / np.sqrt(degree)[:, None]).sum(axis=0, keepdims=True)


@dataclass(frozen=True)
class Recommender:
    """Query logic for one model; stateless, so it is swapped with the model on reload."""

    model: ServingModel
    searcher: TwoStageSearcher

    def _pairs(self, items: np.ndarray, scores: np.ndarray) -> Pairs:
        """(id, score) pairs of one padded result row."""
        valid = items >= 0
        ids = self.model.item_ids[items[valid]].tolist()
        return list(zip(ids, scores[valid].astype(float).tolist(), strict=True))

    def _found_pairs(self, items: np.ndarray, scores: np.ndarray) -> Pairs:
        """Pairs of a single-query kernel's answer (valid rows only, so no mask)."""
        return list(zip(self.model.item_ids[items].tolist(), scores.tolist(), strict=True))

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
        vector = history_vector(self.model, item_rows)
        code = pack_query_codes(self.model, vector)
        extra = exclude_items if exclude_items is not None else np.empty(0, np.int64)
        exclude = np.concatenate([item_rows, extra]) if exclude_seen else extra  # search_query sorts it
        found = self.searcher.search_query(vector[0], code[0], k, exclude=exclude, candidates=candidates)
        return self._found_pairs(*found)

    def popular(self, k: int, *, exclude: Sequence[int] | np.ndarray = ()) -> Pairs:
        """The most popular items (the fallback for unknown users), scored by training count."""
        order = self.model.popular_order
        if len(exclude):
            order = order[~np.isin(order, np.asarray(exclude))]
        rows = order[:k]
        return self._pairs(rows, np.asarray(self.model.item_popularity[rows], dtype=np.float32))

    def similar(self, item_row: int, k: int, *, candidates: int | None = None) -> Pairs:
        """Items nearest to an item: Hamming candidates on item codes, cosine rerank."""
        model = self.model
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
