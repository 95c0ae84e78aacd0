"""Ranking metrics under the LightGCN protocol: Recall@K and NDCG@K with binary gains."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import scipy.sparse as sp
from hashrec.retrieval.topk import top_k


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
    totals = per_user_recall_ndcg(ranked[:, :k], truth, users)
    n = len(totals[0])
    if n == 0:
        return {f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, "users": 0}
    return {f"recall@{k}": float(np.mean(totals[0])), f"ndcg@{k}": float(np.mean(totals[1])), "users": n}


def per_user_recall_ndcg(
    ranked: np.ndarray, truth: sp.csr_matrix, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k and NDCG@k (k = ``ranked.shape[1]``) of each of ``users`` with a non-empty truth row.

    Returns two float64 arrays in the order of ``users``, users without test items left out.
    """
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


def per_user_metrics(
    rank_fn: Callable[[np.ndarray, int], np.ndarray],
    truth: sp.csr_matrix,
    ks: Iterable[int] = (20,),
    batch_size: int = 1024,
    users: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Recall@k and NDCG@k of each user with test items, ``rank_fn(user_rows, k)`` run in batches.

    Returns ``{"recall@k": ..., "ndcg@k": ...}`` for every k in ``ks``: float64 arrays in the
    order of ``users`` (default: every user with test items), users without test items left out.
    """
    ks = sorted(set(ks))
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    parts: dict[str, list[np.ndarray]] = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        ranked = rank_fn(batch, ks[-1])
        for k in ks:
            recall, ndcg = per_user_recall_ndcg(ranked[:, :k], truth, batch)
            parts[f"recall@{k}"].append(recall)
            parts[f"ndcg@{k}"].append(ndcg)
    return {name: np.concatenate(values) if values else np.empty(0) for name, values in parts.items()}


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
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    values = per_user_metrics(rank_fn, truth, ks, batch_size, users)
    n = max(len(users), 1)
    result: dict[str, float] = {name: round(float(v.sum()) / n, 6) for name, v in sorted(values.items())}
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
        ranked, _ = top_k(scores, k)
        total += recall_ndcg(ranked, truth, batch, k)[f"recall@{k}"] * int(
            (np.diff(truth[batch].indptr) > 0).sum()
        )
    n = int((np.diff(truth[users].indptr) > 0).sum())
    return total / max(n, 1)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired per-user values and its percentile bootstrap interval.

    Parameters
    ----------
    a, b : ndarray of float, shape (n_users,)
        One metric of two rankings for the same users in the same order (for example
        :func:`per_user_recall_ndcg` of a fast search and of exact search).
    n_resamples : int
        Bootstrap resamples of the users.
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int

    Returns
    -------
    (mean, low, high) : tuple of float
        An interval that holds 0 means the two rankings are not told apart on these users.
    """
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired values need two equal, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):  # bounded memory: 100 resamples of the users at a time
        stop = min(start + 100, n_resamples)
        means[start:stop] = diff[rng.integers(0, len(diff), (stop - start, len(diff)))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(diff.mean()), float(low), float(high)
