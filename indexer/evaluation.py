"""Evaluate a servable model three ways with the service's own search code."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp
from hashrec.indexer.ranking_metrics import evaluate_rankings
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import Searcher, WalkSearcher, reference_searchers


def align_to_model(
    model: ServingModel, user_ids: np.ndarray, item_ids: np.ndarray, matrix: sp.csr_matrix
) -> tuple[sp.csr_matrix, int]:
    """Re-index a user x item matrix from a dataset's ids into the model's rows.

    Returns the aligned matrix and the number of pairs dropped because the model does not
    know the user or the item.
    """
    user_rows = model.user_index.rows(user_ids.tolist())
    item_rows = model.item_index.rows(item_ids.tolist())
    coo = matrix.tocoo()
    rows, cols = user_rows[coo.row], item_rows[coo.col]
    known = (rows >= 0) & (cols >= 0)
    aligned = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (rows[known], cols[known])),
        shape=(model.n_users, model.n_items),
    )
    aligned.sum_duplicates()
    aligned.data[:] = 1.0
    return aligned, int((~known).sum())


def evaluate_model(
    model: ServingModel,
    test: sp.csr_matrix,
    candidates: int = 200,
    ks: Iterable[int] = (20,),
    batch_size: int = 1024,
) -> dict[str, object]:
    """Recall and NDCG of the full-precision, Hamming-only and served (Hamming + rerank) rankings.

    Parameters
    ----------
    model : ServingModel
    test : csr_matrix
        Held-out items in the model's row space; training items are excluded from every ranking.
    candidates : int
        C, the Hamming candidates reranked by the served ranking.
    ks : iterable of int
    """
    searchers = reference_searchers(model, candidates)
    result: dict[str, object] = {"bits": model.bits, "candidates": candidates}
    for name, searcher in searchers.items():

        def rank(users: np.ndarray, k: int, searcher: Searcher | WalkSearcher = searcher) -> np.ndarray:
            return searcher.search_users(users, k).items

        result[name] = evaluate_rankings(rank, test, ks=ks, batch_size=batch_size)
    return result
