"""Searchers: one shared contract run over every implementation, and the fast paths checked
against the exact one (the fused and numpy searchers against each other in test_speed_paths)."""

from __future__ import annotations

import numpy as np
import pytest
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import (
    ExactSearcher,
    FusedSearcher,
    HammingSearcher,
    NumpySearcher,
    hamming_candidates,
    two_stage_searcher,
)
from hashrec.retrieval.topk import top_k

SEARCHERS = {
    "exact": ExactSearcher,
    "hamming": HammingSearcher,
    "fused": lambda model: FusedSearcher(model, oversample=10),
    # faiss scanning: the numpy searcher is what such a model gets
    "numpy": lambda model: NumpySearcher(
        ServingModel.from_arrays("faiss", model.arrays, hamming_kernel="faiss"), oversample=10
    ),
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

    def test_search_users_is_search_with_each_users_seen_rows(self, searcher):
        model = searcher.model
        users = np.arange(9)
        by_row = searcher.search_users(users, 15)
        by_vector = searcher.search(
            np.asarray(model.user_embeddings[users], np.float32),
            np.asarray(model.user_codes[users]),
            15,
            exclude=[model.seen(int(u)) for u in users],
        )
        assert np.array_equal(by_row.items, by_vector.items)
        assert np.array_equal(by_row.scores, by_vector.scores)

    def test_search_user_is_the_valid_part_of_search_users(self, searcher):
        model = searcher.model
        extra = np.array([5, 5, 1, 40])
        for user in range(12):
            for exclude_seen in (True, False):
                batched = searcher.search_users(
                    np.array([user]), 20, exclude_seen=exclude_seen, exclude_items=extra
                )
                rows, scores = searcher.search_user(user, 20, exclude_seen=exclude_seen, exclude_items=extra)
                valid = batched.items[0] >= 0
                assert rows.dtype == np.int64 and scores.dtype == np.float32
                assert np.array_equal(rows, batched.items[0][valid])
                np.testing.assert_allclose(scores, batched.scores[0][valid], rtol=1e-6)
        assert len(searcher.search_user(0, model.n_items, exclude_items=np.arange(model.n_items))[0]) == 0

    def test_search_query_is_the_valid_part_of_search(self, searcher):
        model = searcher.model
        rng = np.random.default_rng(3)
        vectors = rng.standard_normal((6, model.item_embeddings.shape[1])).astype(np.float32)
        codes = np.asarray(model.user_codes[:6])
        for i in range(6):
            exclude = rng.integers(0, model.n_items, 30) if i % 2 else None
            expected = searcher.search(
                vectors[[i]], codes[[i]], 20, exclude=None if exclude is None else [np.unique(exclude)]
            )
            rows, scores = searcher.search_query(vectors[i], codes[i], 20, exclude=exclude)
            valid = expected.items[0] >= 0
            assert np.array_equal(rows, expected.items[0][valid])
            np.testing.assert_allclose(scores, expected.scores[0][valid], rtol=1e-6)


def test_two_stage_searcher_chooses_its_implementation_once(model):
    """A numba scan gets the fused searcher; a faiss scan (or an IVF index) the numpy one."""
    faiss_scan = ServingModel.from_arrays("faiss", model.arrays, hamming_kernel="faiss")
    assert type(two_stage_searcher(model)) is FusedSearcher
    assert type(two_stage_searcher(faiss_scan)) is NumpySearcher
    with pytest.raises(ValueError, match="fused searcher needs numba and a flat index"):
        FusedSearcher(faiss_scan)


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
    full = two_stage_searcher(model, candidates=model.n_items, max_candidates=model.n_items)
    two_stage = full.search_users(users, 20)
    assert np.array_equal(exact.items, two_stage.items)
    assert np.allclose(exact.scores, two_stage.scores, rtol=1e-5)


def test_two_stage_recall_floor_against_exact(model):
    """Congruence: Hamming top-200 + rerank keeps most of the exact top-20 on planted data."""
    users = np.arange(model.n_users)
    exact = ExactSearcher(model).search_users(users, 20).items
    served = two_stage_searcher(model, candidates=200).search_users(users, 20).items
    overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, served, strict=True)])
    hamming = HammingSearcher(model).search_users(users, 20).items
    hamming_overlap = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, hamming, strict=True)])
    assert overlap >= 0.9
    assert overlap > hamming_overlap  # the rerank is what recovers the exact ranking


def test_candidate_count_bounds(model):
    searcher = two_stage_searcher(model, oversample=10, max_candidates=150)
    assert searcher.n_candidates(5) == 50
    assert searcher.n_candidates(100) == 150
    assert searcher.n_candidates(300) == 300  # never fewer than k
