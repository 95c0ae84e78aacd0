"""Seeded synthetic interactions with latent communities and long-tailed popularity."""

from __future__ import annotations

import numpy as np

from .build import build_interactions
from .interactions import Interactions
from .records import Records

__all__ = ["generate_interactions", "item_community"]

_NOISE_SHARE = 0.1  # share of each user's draws from global popularity, across communities
_BLOCK_CELLS = 4_000_000  # users x items scored at once


def item_community(item_index: np.ndarray | int, n_communities: int) -> np.ndarray | int:
    """Community of synthetic item ``i{index}``: ``index % n_communities``.

    Parameters
    ----------
    item_index : int or numpy.ndarray
        Dense index (the number in the item id).
    n_communities : int
        Number of communities the data was generated with.

    Returns
    -------
    int or numpy.ndarray
    """
    return item_index % n_communities


def _ids(prefix: str, n: int) -> np.ndarray:
    """Zero-padded ids, so that lexicographic order is numeric order: u00, u01, ..."""
    width = len(str(max(n - 1, 0)))
    return np.array([f"{prefix}{k:0{width}d}" for k in range(n)], dtype=str)


def _basket_sizes(rng: np.random.Generator, n_users: int, n_items: int, mean: float) -> np.ndarray:
    """Long-tailed (log-normal) items per user, at least 2, mean about ``mean``."""
    sigma = 1.0
    extra = max(mean - 2.0, 1e-9)
    mu = np.log(extra) - sigma**2 / 2
    sizes = 2 + np.floor(rng.lognormal(mu, sigma, size=n_users) + 0.5).astype(np.int64)
    return np.minimum(sizes, n_items)


def _community_weights(
    n_items: int, n_communities: int, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-community item distributions and the global one, all popularity weighted."""
    members = item_community(np.arange(n_items), n_communities)
    per_community = np.zeros((n_communities, n_items))
    per_community[members, np.arange(n_items)] = popularity
    per_community /= per_community.sum(axis=1, keepdims=True)
    return per_community, popularity / popularity.sum()


def generate_interactions(
    n_users: int = 2000,
    n_items: int = 1000,
    n_communities: int = 8,
    mean_items_per_user: float = 20.0,
    popularity_exponent: float = 1.0,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Interactions:
    """Generate a seeded, realistic-looking implicit-feedback data set.

    Items belong to communities (item ``i{k}`` to community ``k % n_communities``, see
    `item_community`) and have a Zipf-like popularity ``(rank + 1) ** -popularity_exponent``
    over a random ranking. Each user has a main community (drawn uniformly), a secondary one,
    and a main share drawn from Beta(8, 2); 90% of the user's draws split between the two by
    that share, and 10% come from global popularity (noise). The number of items per user is
    log-normal with mean about ``mean_items_per_user`` (at least 2). A user's items are drawn
    without replacement from that mixture, weighted by popularity. Then each user's items are
    split at random, ``test_fraction`` to test.

    Parameters
    ----------
    n_users, n_items : int
        Sizes; ids are ``"u0".."u{n-1}"`` and ``"i0".."i{n-1}"``, zero-padded to equal width
        (``"u0000"`` for 2000 users) so that the dense order is the numeric order.
    n_communities : int
        Number of latent communities, at least 1.
    mean_items_per_user : float
        Mean basket size before capping at ``n_items``.
    popularity_exponent : float
        Zipf exponent of item popularity; 0 gives uniform popularity.
    seed : int
        Seed of ``numpy.random.default_rng``; equal seeds give identical results.
    test_fraction : float
        Share of each user's items held out for test, in ``[0, 1)``.

    Returns
    -------
    Interactions
        With ``split == "random"``; every user and item id is present, even without pairs.
    """
    if n_users < 1 or n_items < 2 or n_communities < 1:
        raise ValueError("need n_users >= 1, n_items >= 2 and n_communities >= 1")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    n_communities = min(n_communities, n_items)
    rng = np.random.default_rng(seed)
    ranking = rng.permutation(n_items)
    popularity = (ranking + 1.0) ** -popularity_exponent
    per_community, overall = _community_weights(n_items, n_communities, popularity)
    main = rng.integers(0, n_communities, size=n_users)
    offset = rng.integers(1, max(n_communities, 2), size=n_users)
    second = (main + offset) % n_communities
    main_share = rng.beta(8.0, 2.0, size=n_users) * (1.0 - _NOISE_SHARE)
    sizes = _basket_sizes(rng, n_users, n_items, mean_items_per_user)

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    block = max(1, _BLOCK_CELLS // n_items)
    for start in range(0, n_users, block):
        users = np.arange(start, min(start + block, n_users))
        share = main_share[users, None]
        mix = (
            share * per_community[main[users]]
            + (1.0 - _NOISE_SHARE - share) * per_community[second[users]]
            + _NOISE_SHARE * overall
        )
        # Gumbel top-k: the k largest log(p) + Gumbel are a weighted draw without replacement.
        scores = np.log(mix) + rng.gumbel(size=mix.shape)
        k_max = int(sizes[users].max())
        top = np.argpartition(-scores, k_max - 1, axis=1)[:, :k_max]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), 1), 1)
        keep = np.arange(k_max) < sizes[users, None]
        rows.append(np.broadcast_to(users[:, None], keep.shape)[keep])
        cols.append(top[keep])

    user_ids, item_ids = _ids("u", n_users), _ids("i", n_items)
    records = Records(
        path="<synthetic>",
        users=user_ids[np.concatenate(rows)],
        items=item_ids[np.concatenate(cols)],
        extra_users=user_ids,
        extra_items=item_ids,
    )
    source = (
        f"synthetic(seed={seed},n_users={n_users},n_items={n_items},"
        f"n_communities={n_communities},mean_items_per_user={mean_items_per_user},"
        f"popularity_exponent={popularity_exponent},test_fraction={test_fraction})"
    )
    return build_interactions(records, split="random", test_fraction=test_fraction, seed=rng, source=source)
