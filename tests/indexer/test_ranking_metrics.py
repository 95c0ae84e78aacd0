"""Recall/NDCG against a brute-force reference written from the definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hashrec.indexer.ranking_metrics import (
    evaluate_rankings,
    paired_bootstrap,
    per_user_recall_ndcg,
    recall_ndcg,
)
from hashrec.retrieval.topk import top_k


def brute_force(ranked, truth_sets, k):
    recalls, ndcgs = [], []
    for row, truth in zip(ranked, truth_sets, strict=True):
        if not truth:
            continue
        hits = [1.0 if int(item) in truth else 0.0 for item in row[:k]]  # -1 is never in truth
        recalls.append(sum(hits) / len(truth))
        dcg = sum(h / math.log2(pos + 2) for pos, h in enumerate(hits))
        idcg = sum(1 / math.log2(pos + 2) for pos in range(min(len(truth), k)))
        ndcgs.append(dcg / idcg)
    return float(np.mean(recalls)), float(np.mean(ndcgs))


def random_case(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 60
    truth = sp.random(n_users, n_items, density=0.08, random_state=seed, format="csr")
    truth.data[:] = 1
    ranked = np.stack([rng.permutation(n_items)[:25] for _ in range(n_users)]).astype(np.int64)
    ranked[rng.random(ranked.shape) < 0.05] = -1  # empty slots never count
    return truth, ranked


def test_matches_brute_force_on_random_rankings():
    for seed in range(5):
        truth, ranked = random_case(seed)
        truth_sets = [set(truth[u].indices.tolist()) for u in range(truth.shape[0])]
        for k in (5, 20):
            got = recall_ndcg(ranked, truth, np.arange(truth.shape[0]), k)
            recall, ndcg = brute_force(ranked, truth_sets, k)
            assert math.isclose(got[f"recall@{k}"], recall, rel_tol=1e-9)
            assert math.isclose(got[f"ndcg@{k}"], ndcg, rel_tol=1e-9)


def test_perfect_ranking_scores_one():
    truth = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    ranked = np.array([[1, 0, 2, 3], [3, 0, 1, 2]])
    got = recall_ndcg(ranked, truth, np.arange(2), 4)
    assert got["recall@4"] == 1.0 and math.isclose(got["ndcg@4"], 1.0)


def test_batched_evaluation_equals_one_batch():
    truth, ranked = random_case(7)
    users_with_truth = np.flatnonzero(np.diff(truth.indptr) > 0)

    def rank(users, k):
        return ranked[users, :k]

    one = evaluate_rankings(rank, truth, ks=(10, 20), batch_size=10_000)
    many = evaluate_rankings(rank, truth, ks=(10, 20), batch_size=3)
    assert one == many and one["users"] == len(users_with_truth)
    direct = recall_ndcg(ranked[users_with_truth], truth, users_with_truth, 20)
    assert math.isclose(one["recall@20"], direct["recall@20"], abs_tol=1e-6)


def test_per_user_values_average_to_the_means():
    truth, ranked = random_case(3)
    users = np.arange(truth.shape[0])
    recall, ndcg = per_user_recall_ndcg(ranked[:, :20], truth, users)
    assert len(recall) == int((np.diff(truth.indptr) > 0).sum())
    got = recall_ndcg(ranked, truth, users, 20)
    assert math.isclose(recall.mean(), got["recall@20"]) and math.isclose(ndcg.mean(), got["ndcg@20"])


def test_paired_bootstrap_tells_a_shift_from_noise():
    rng = np.random.default_rng(0)
    base = rng.random(3000)
    noise = rng.normal(0.0, 0.05, 3000)
    mean, low, high = paired_bootstrap(base + 0.01 + noise, base)
    assert low > 0.0 and low < mean < high and abs(mean - 0.01) < 0.005  # a real shift: 0 outside
    mean, low, high = paired_bootstrap(base + noise, base)
    assert low < 0.0 < high  # noise alone: 0 inside
    assert paired_bootstrap(base, base) == (0.0, 0.0, 0.0)
    narrow = paired_bootstrap(base + noise, base, confidence=0.5)
    assert low < narrow[1] < narrow[2] < high  # a lower confidence gives a narrower interval


@pytest.mark.parametrize(
    ("a", "b", "confidence", "message"),
    [
        (np.zeros(3), np.zeros(4), 0.95, "equal"),
        (np.zeros(0), np.zeros(0), 0.95, "non-empty"),
        (np.zeros(3), np.zeros(3), 1.0, "confidence"),
    ],
)
def test_paired_bootstrap_rejects_bad_input(a, b, confidence, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b, confidence=confidence)


def test_top_k_takes_the_k_largest_and_every_column_of_a_small_catalogue():
    """The indexer's rankings (exact_recall, the learned codes' teacher) use retrieval's top_k."""
    scores = np.array([[0.1, 0.9, 0.5, 0.7], [1.0, -1.0, 0.0, 2.0]])
    assert [sorted(r) for r in top_k(scores, 2)[0].tolist()] == [[1, 3], [0, 3]]
    for k in (4, 20):  # every column, now best first (top_k orders; the old helper did not)
        assert [sorted(r) for r in top_k(scores, k)[0].tolist()] == [[0, 1, 2, 3]] * 2
