"""The closed-form encoder: its SVD, the filter it factors, and the holdout search."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.encoders.closed_form import (
    ClosedForm,
    ClosedFormConfig,
    normalized_interactions,
    randomized_svd,
)


@pytest.fixture(scope="module")
def data():
    return generate_interactions(n_users=300, n_items=200, n_communities=4, seed=9)


def test_randomized_svd_matches_the_exact_spectrum():
    matrix = sp.random(300, 120, density=0.05, random_state=1, format="csr", dtype=np.float32)
    singular, basis = randomized_svd(matrix, 10, iters=6, seed=0)
    exact = np.linalg.svd(matrix.toarray(), compute_uv=False)[:10]
    np.testing.assert_allclose(singular, exact, rtol=1e-3)
    assert basis.shape == (120, 10) and basis.dtype == np.float32
    np.testing.assert_allclose(basis.T @ basis, np.eye(10), atol=1e-4)


def test_power_zero_is_the_ideal_low_pass_filter(data):
    """p = 0 scores users exactly as GF-CF's ideal filter r_u D^-1/2 V V^T D^1/2 on the same basis."""
    encoder = ClosedForm(ClosedFormConfig(dim=16, power=0.0))
    emb = encoder.fit(data.train)
    normalized, degree = normalized_interactions(data.train)
    _, basis = randomized_svd(normalized, 16, iters=3, seed=0)
    d = np.maximum(degree, 1.0)
    expected = data.train.toarray() @ np.diag(d**-0.5) @ basis @ basis.T @ np.diag(d**0.5)
    np.testing.assert_allclose(emb.users @ emb.items.T, expected, rtol=1e-3, atol=1e-4)


def test_power_weights_components_by_singular_value(data):
    """The score with power p equals the ideal filter with component j scaled by (s_j / s_1)^p."""
    flat = ClosedForm(ClosedFormConfig(dim=16, power=0.0)).fit(data.train)
    weighted = ClosedForm(ClosedFormConfig(dim=16, power=1.0)).fit(data.train)
    singular, _ = randomized_svd(normalized_interactions(data.train)[0], 16, iters=3, seed=0)
    scale = singular / singular[0]
    np.testing.assert_allclose(weighted.users, flat.users * np.sqrt(scale), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(weighted.items, flat.items * np.sqrt(scale), rtol=1e-4, atol=1e-6)
    assert not np.allclose(weighted.users @ weighted.items.T, flat.users @ flat.items.T)


def test_holdout_search_takes_the_best_rank_and_power(data):
    encoder = ClosedForm(ClosedFormConfig(ranks=(4, 8, 16, 48), powers=(0.0, 1.0)))
    emb = encoder.fit(data.train)
    search, fitted = encoder.history
    assert set(search["search"]) == {f"{r}/p{p}" for r in (4, 8, 16, 48) for p in (0, 1)}
    rank, power = search["chosen"]
    best = max(search["search"].values())
    assert search["search"][f"{rank}/p{power:g}"] >= best - 1e-4
    assert emb.users.shape[1] == rank == fitted["rank"] and fitted["power"] == power
    assert emb.items.shape == (data.n_items, rank)


def test_a_fixed_rank_or_power_is_kept_by_the_search(data):
    encoder = ClosedForm(ClosedFormConfig(dim=8, powers=(0.0, 0.5)))
    emb = encoder.fit(data.train)
    assert set(encoder.history[0]["search"]) == {"8/p0", "8/p0.5"}
    assert emb.users.shape[1] == 8
    encoder = ClosedForm(ClosedFormConfig(power=0.5, ranks=(4, 8)))
    encoder.fit(data.train)
    assert set(encoder.history[0]["search"]) == {"4/p0.5", "8/p0.5"}


def test_same_seed_same_vectors(data):
    first = ClosedForm(ClosedFormConfig(ranks=(8, 16), seed=3)).fit(data.train)
    again = ClosedForm(ClosedFormConfig(ranks=(8, 16), seed=3)).fit(data.train)
    assert np.array_equal(first.users, again.users) and np.array_equal(first.items, again.items)


def test_the_search_skips_ranks_past_a_quarter_of_the_spectrum(data):
    encoder = ClosedForm(ClosedFormConfig(ranks=(8, 16, 48, 64, 128), powers=(0.0,)))
    encoder.fit(data.train)  # 300 users x 200 items: ranks up to 50
    assert set(encoder.history[0]["search"]) == {"8/p0", "16/p0", "48/p0"}
