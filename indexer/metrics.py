"""Ranking metrics under the LightGCN protocol: Recall@K and NDCG@K with binary gains."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import scipy.sparse as sp


def recall_ndcg(ranked: np.ndarray, truth: sp.csr_matrix, users: np.ndarray, k: int) -> dict[str, float]:
    """Mean Recall@k and NDCG@k over ``users`` that have at least one test item.

    Parameters
    ----------
    ranked : ndarray of int64, shape (len(users), >= k)
        Item rows best first; -1 marks an empty slot.
    truth : csr_matrix, shape (n_users, n_items)
        Held-out items of every user.
    users : ndarray of int
        The user rows that ``ranked`` answers, in order.
    k : int

    Returns
    -------
    dict
        ``{"recall@k": ..., "ndcg@k": ..., "users": n}`` where recall divides hits by the
        number of the user's test items (not by min(k, n)), as LightGCN does.
    """
    totals = _per_user(ranked[:, :k], truth, users)
    n = len(totals[0])
    if n == 0:
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "users": 0}
    return {f"recall@{k}": float(np.mean(totals[0])), f"ndcg@{k}": float(np.mean(totals[1])), "users": n}


def _per_user(ranked: np.ndarray, truth: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-user recall and NDCG for users with a non-empty truth row."""
    truth_rows = truth[users]
    n_true = np.diff(truth_rows.indptr)
    has_truth = n_true > 0
    k = ranked.shape[1]
    # Hits by membership of (user, item) in the truth CSR, vectorized by sorted keys.
    n_items = truth.shape[1]
    coo = truth_rows.tocoo()
    truth_keys = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    ranked_keys = np.arange(len(users), dtype=np.int64)[:, None] * n_items + ranked
    pos = np.searchsorted(truth_keys, ranked_keys).clip(max=len(truth_keys) - 1)
    hits = (
        (truth_keys[pos] == ranked_keys) & (ranked >= 0) if len(truth_keys) else np.zeros_like(ranked, bool)
    )
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_true, k).clip(min=1) - 1]
    recall = hits.sum(axis=1) / np.maximum(n_true, 1)
    return recall[has_truth], (dcg / ideal)[has_truth]


def evaluate_rankings(
    rank_fn: Callable[[np.ndarray, int], np.ndarray],
    truth: sp.csr_matrix,
    ks: Iterable[int] = (20,),
    batch_size: int = 1024,
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """Evaluate ``rank_fn(user_rows, k) -> ranked item rows`` in batches over users with test items.

    Returns the mean of every metric in ``ks`` and the number of users evaluated.
    """
    ks = sorted(set(ks))
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    sums: dict[str, float] = {}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        ranked = rank_fn(batch, ks[-1])
        for k in ks:
            recall, ndcg = _per_user(ranked[:, :k], truth, batch)
            sums[f"recall@{k}"] = sums.get(f"recall@{k}", 0.0) + float(recall.sum())
            sums[f"ndcg@{k}"] = sums.get(f"ndcg@{k}", 0.0) + float(ndcg.sum())
    n = max(len(users), 1)
    result = {name: round(total / n, 6) for name, total in sorted(sums.items())}
    result["users"] = len(users)
    return result


def exact_recall(
    users_vec: np.ndarray,
    items_vec: np.ndarray,
    train: sp.csr_matrix,
    truth: sp.csr_matrix,
    users: np.ndarray,
    k: int = 20,
    batch_size: int = 2048,
) -> float:
    """Recall@k of the full-precision inner-product ranking for ``users`` (training items excluded)."""
    total = 0.0
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = users_vec[batch] @ items_vec.T
        rows, cols = train[batch].nonzero()
        scores[rows, cols] = -np.inf
        ranked = np.argpartition(-scores, k, axis=1)[:, :k]
        total += recall_ndcg(ranked, truth, batch, k)[f"recall@{k}"] * int(
            (np.diff(truth[batch].indptr) > 0).sum()
        )
    n = int((np.diff(truth[users].indptr) > 0).sum())
    return total / max(n, 1)
