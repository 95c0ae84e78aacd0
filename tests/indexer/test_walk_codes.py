"""End-to-end tuning of the walk's codes (``indexer.walk_codes``): it raises the share of the
teacher's items in the Hamming top-C over the projection it starts from, repeats for a seed (up
to float rounding), never draws a positive as a negative, and checks its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.quantizers.learned import LearnedQuantizer
from hashrec.indexer.walk import WalkFitConfig, query_weights, spectral_features, walk_top_k
from hashrec.indexer.walk_codes import CodeTuning, _negatives, near_misses, tune_codes
from hashrec.retrieval.query_codes import mips_augment
from hashrec.retrieval.walk import WalkExponents

BITS = 32


@pytest.fixture(scope="module")
def start():  # type: ignore[no-untyped-def]
    """A generated graph, its walk teacher, and the projection's (query weights, item pre-codes)."""
    data = generate_interactions(n_users=500, n_items=400, n_communities=8, mean_items_per_user=15, seed=5)
    users, items, history = spectral_features(data.train, WalkFitConfig(feature_dim=32))
    teacher = walk_top_k(data.train, WalkExponents(), 10)
    quantizer = LearnedQuantizer(BITS, epochs=2)
    quantizer.encode(users, items, data.train, teacher=teacher)
    item_pre = mips_augment(users, items)[1] @ quantizer.projection
    return data.train, query_weights(history, quantizer), item_pre, teacher


def teacher_share(train, weights, item_pre, teacher, candidates=40) -> float:  # type: ignore[no-untyped-def]
    """Mean share of each user's teacher items among its Hamming top-``candidates``."""
    found = near_misses(np.asarray(train @ weights), item_pre, (0, candidates))
    return float(np.mean([np.isin(t, f).mean() for t, f in zip(teacher, found, strict=True)]))


def test_tuning_puts_more_of_the_teacher_in_the_hamming_top_c(start) -> None:  # type: ignore[no-untyped-def]
    train, weights, item_pre, teacher = start
    tuned = tune_codes(train, weights, item_pre, teacher, CodeTuning(epochs=8, hard_ranks=(40, 120)))
    before = teacher_share(train, weights, item_pre, teacher)
    after = teacher_share(train, *tuned, teacher)
    assert after > before + 0.05, (before, after)
    assert all(a.shape == (train.shape[1], BITS) and a.dtype == np.float32 for a in tuned)


def test_tuning_is_deterministic_and_zero_epochs_keeps_the_start(start) -> None:  # type: ignore[no-untyped-def]
    train, weights, item_pre, teacher = start
    cfg = CodeTuning(epochs=2, seed=3)
    first, second = (tune_codes(train, weights, item_pre, teacher, cfg) for _ in range(2))
    for a, b in zip(first, second, strict=True):  # the same draws; torch's threads may round apart
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        assert ((a > 0) == (b > 0)).mean() >= 0.999
    kept = tune_codes(train, weights, item_pre, teacher, CodeTuning(epochs=0))
    assert kept[0] is weights and kept[1] is item_pre


def test_near_misses_never_include_a_rows_positive() -> None:
    rng = np.random.default_rng(0)
    positives = torch.from_numpy(rng.integers(0, 50, (64, 5)))
    pool = positives.repeat(1, 4)  # a pool made only of positives: every hard draw clashes
    drawn = _negatives(rng, pool, positives, 50, 30, share=1.0)
    clash = (drawn[:, :, None] == positives[:, None, :]).any(-1)
    # replaced by uniform draws, which may hit a positive only by chance (5 of 50 items)
    assert clash.float().mean() < 0.25
    assert drawn.shape == (64, 30) and int(drawn.min()) >= 0 and int(drawn.max()) < 50


@pytest.mark.parametrize(
    "options",
    [{"epochs": -1}, {"negatives": 0}, {"lr": 0.0}, {"hard_ranks": (10, 5)}, {"hard_share": 1.5}],
)
def test_bad_options_are_refused(options) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="code tuning|hard_ranks"):
        CodeTuning(**options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tuning_on_cuda_matches_cpu(start) -> None:  # type: ignore[no-untyped-def]
    train, weights, item_pre, teacher = start
    on_cpu = tune_codes(train, weights, item_pre, teacher, CodeTuning(epochs=2, device="cpu"))
    on_gpu = tune_codes(train, weights, item_pre, teacher, CodeTuning(epochs=2, device="cuda"))
    for a, b in zip(on_cpu, on_gpu, strict=True):
        assert ((a > 0) == (b > 0)).mean() >= 0.99
