"""Per-user train/test splits of unique (user, item) pairs.

One rounding rule everywhere (:func:`test_counts`): a user with n items holds out
``round_half_up(fraction * n)`` of them, at most n - 1. The data's test split
(:func:`random_test_mask`, :func:`temporal_test_mask`) and the indexer's validation holdout
(:func:`holdout`, a random split of the training matrix) both use it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["holdout", "random_test_mask", "temporal_test_mask", "test_counts"]


def test_counts(counts: np.ndarray, test_fraction: float) -> np.ndarray:
    """Number of held-out items per user: fraction * n rounded half up (2.5 -> 3), keeping at
    least one item in train. The one rounding rule of every split here.

    Parameters
    ----------
    counts : numpy.ndarray
        Number of unique items of each user.
    test_fraction : float
        Share of each user's items to hold out, in ``[0, 1)``.

    Returns
    -------
    numpy.ndarray
        int64 array; 0 for users with at most one item.
    """
    wanted = np.floor(counts * test_fraction + 0.5).astype(np.int64)
    return np.clip(np.minimum(wanted, counts - 1), 0, None)


def _ranks(order: np.ndarray, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rank of each pair within its user, given an order grouped by ascending user."""
    starts = np.cumsum(counts) - counts
    ranks = np.empty(len(rows), dtype=np.int64)
    ranks[order] = np.arange(len(rows), dtype=np.int64) - np.repeat(starts, counts)
    return ranks


def random_test_mask(
    rows: np.ndarray, n_users: int, test_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Pick a seeded random ``test_fraction`` of each user's pairs for test.

    Parameters
    ----------
    rows : numpy.ndarray
        User row of each unique pair.
    n_users : int
        Number of users.
    test_fraction : float
        Share held out per user (see `test_counts`).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        Boolean mask over pairs, True for test.
    """
    counts = np.bincount(rows, minlength=n_users)
    keys = rng.random(len(rows))
    order = np.lexsort((keys, rows))
    ranks = _ranks(order, rows, counts)
    return ranks < test_counts(counts, test_fraction)[rows]


def temporal_test_mask(
    rows: np.ndarray, cols: np.ndarray, times: np.ndarray, n_users: int, test_fraction: float
) -> np.ndarray:
    """Put each user's latest ``test_fraction`` of pairs (by time, then item) in test.

    Parameters
    ----------
    rows, cols : numpy.ndarray
        User row and item column of each unique pair.
    times : numpy.ndarray
        Timestamp of each pair.
    n_users : int
        Number of users.
    test_fraction : float
        Share held out per user (see `test_counts`).

    Returns
    -------
    numpy.ndarray
        Boolean mask over pairs, True for test.
    """
    counts = np.bincount(rows, minlength=n_users)
    order = np.lexsort((cols, times, rows))
    ranks = _ranks(order, rows, counts)
    return ranks >= (counts - test_counts(counts, test_fraction))[rows]


def holdout(train: sp.csr_matrix, fraction: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each user's training items into (fit, validation) with :func:`random_test_mask`.

    Users keep at least one item to fit; both matrices are float32 with ``train``'s shape.
    """
    coo = sp.csr_matrix(train).tocoo()
    rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
    is_val = random_test_mask(rows, train.shape[0], fraction, np.random.default_rng(seed))

    def part(mask: np.ndarray) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), np.float32)
        return sp.csr_matrix((ones, (rows[mask], cols[mask])), shape=train.shape)

    return part(~is_val), part(is_val)
