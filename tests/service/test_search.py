"""Searchers: one shared contract, and the fast path checked against the exact one."""

from __future__ import annotations

import numpy as np
import pytest
from hashrec.retrieval.search import (
    ExactSearcher,
    HammingSearcher,
    TwoStageSearcher,
    hamming_candidates,
    top_k,
)

SEARCHERS = {
    "exact": ExactSearcher,
    "hamming": HammingSearcher,
    "two-stage": lambda model: TwoStageSearcher(model, oversample=10),
}


@pytest.fixture(params=sorted(SEARCHERS))
def searcher(request, model):
    return SEARCHERS[request.param](model)


class TestSearcherContract:
    """Every Searcher passes these."""

    def test_shapes_and_dtypes(self, searcher, model):
        result = searcher.search_users(np.arange(7), k=12)
        assert result.items.shape == result.scores.shape == (7, 12)
        assert result.items.dtype == np.int64 and result.scores.dtype == np.float32

    def test_seen_items_are_never_returned(self, searcher, model):
        users = np.arange(model.n_users)
        result = searcher.search_users(users, k=30)
        for row, user in enumerate(users):
            assert not set(result.items[row]) & set(model.seen(user).tolist())

    def test_without_exclusion_seen_items_may_return(self, searcher, model):
        result = searcher.search_users(np.arange(50), k=model.n_items, exclude_seen=False)
        assert (result.items >= 0).all()

    def test_scores_sorted_descending_and_items_unique(self, searcher):
        result = searcher.search_users(np.arange(20), k=25)
        assert (np.diff(result.scores, axis=1) <= 0).all()
        for row in result.items:
            valid = row[row >= 0]
            assert len(set(valid.tolist())) == len(valid)

    def test_k_beyond_catalogue_pads_with_minus_one(self, searcher, model):
        result = searcher.search_users(np.array([0]), k=model.n_items + 10)
        n_valid = model.n_items - len(model.seen(0))
        assert (result.items[0, :n_valid] >= 0).all()
        assert (result.items[0, n_valid:] == -1).all()
        assert np.isneginf(result.scores[0, n_valid:]).all()


def test_top_k_matches_full_sort():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((5, 100)).astype(np.float32)
    positions, values = top_k(scores, 10)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert np.array_equal(positions, expected)
    assert np.array_equal(values, np.take_along_axis(scores, expected, axis=1))


@pytest.mark.parametrize("width", [30, 300, 5000])
def test_top_k_breaks_ties_at_the_kth_place_by_position(width):
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, (6, width)).astype(np.float32)  # many ties at every value
    scores[:, -1] = np.inf
    scores[2] = 1.0  # one row of nothing but ties
    positions, values = top_k(scores, 10)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    assert np.array_equal(positions, expected)
    assert np.array_equal(values, np.take_along_axis(scores, expected, axis=1))


def test_seen_items_do_not_eat_the_candidate_budget(model):
    user = 3
    exclude = [model.seen(user)]
    items, _ = hamming_candidates(model, model.user_codes[[user]], 40, exclude)
    assert (items >= 0).sum() == 40
    assert not set(items[0].tolist()) & set(exclude[0].tolist())


def test_two_stage_with_every_item_as_candidate_equals_exact(model):
    users = np.arange(model.n_users)
    exact = ExactSearcher(model).search_users(users, 20)
    full = TwoStageSearcher(model, candidates=model.n_items, max_candidates=model.n_items)
    two_stage = full.search_users(users, 20)
    assert np.array_equal(exact.items, two_stage.items)
    assert np.allclose(exact.scores, two_stage.scores, rtol=1e-5)


def test_two_stage_recall_floor_against_exact(model):
    """Congruence: Hamming top-200 + rerank keeps most of the exact top-20 on planted data."""
    users = np.arange(model.n_users)
    exact = ExactSearcher(model).search_users(users, 20).items
    served = TwoStageSearcher(model, candidates=200).search_users(users, 20).items
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, served, strict=True)])
    hamming = HammingSearcher(model).search_users(users, 20).items
    hamming_overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, hamming, strict=True)])
    assert overlap >= 0.9
    assert overlap > hamming_overlap  # the rerank is what recovers the exact ranking


def test_candidate_count_bounds(model):
    searcher = TwoStageSearcher(model, oversample=10, max_candidates=150)
    assert searcher.n_candidates(5) == 50
    assert searcher.n_candidates(100) == 150
    assert searcher.n_candidates(300) == 300  # never fewer than k
