"""The ids a load test draws from: read from the model store the service serves.

The service has no route that lists users, so the load test opens the same store (read-only) and
reads ``user_ids``, ``item_ids``, the users' seen-item counts and the item popularity of its current
version. Draws are Zipf-like: a seeded random order of the users, rank r drawn with probability
proportional to 1 / r**s, so a few users are hot (as in real traffic) and the answer cache sees a
realistic hit rate. Items for ``similar-items`` follow popularity order under the same law.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ZipfSampler:
    """Draw values with probability proportional to 1 / rank**s (rank 1 = first value)."""

    values: tuple[str, ...]
    cdf: tuple[float, ...]

    @classmethod
    def build(cls, values: list[str], s: float) -> ZipfSampler:
        if not values:
            raise ValueError("nothing to sample from")
        weights = 1.0 / np.arange(1, len(values) + 1, dtype=np.float64) ** max(s, 0.0)
        cdf = np.cumsum(weights)
        return cls(tuple(values), tuple((cdf / cdf[-1]).tolist()))

    def draw(self, rng: random.Random) -> str:
        position = bisect.bisect_left(self.cdf, rng.random())
        return self.values[min(position, len(self.values) - 1)]


@dataclass(frozen=True)
class IdPool:
    """What one store version offers the load test."""

    version: str
    n_items: int
    users: ZipfSampler
    items: ZipfSampler
    seen_count: dict[str, int]

    def expected_items(self, k: int, user_id: str | None) -> int:
        """Items an answer must hold: k, unless the catalogue (less the user's seen items) is smaller."""
        if user_id is None or user_id not in self.seen_count:
            return min(k, self.n_items)
        return min(k, self.n_items - self.seen_count[user_id])


def id_strings(ids: np.ndarray) -> list[str]:
    """An artifact's ids as str: fixed-width unicode (format 1) or UTF-8 bytes (format 2)."""
    values = np.asarray(ids).tolist()
    return (
        [v.decode("utf-8") for v in values] if np.asarray(ids).dtype.kind == "S" else [str(v) for v in values]
    )


def load_pool(store: str, zipf: float = 1.1, seed: int = 0) -> IdPool:
    """Read the store's current version; raises model_store.StoreError when there is none."""
    from hashrec.model_store import ModelStore

    artifact = ModelStore(store).open()
    user_ids = id_strings(artifact.array("user_ids"))
    item_ids = id_strings(artifact.array("item_ids"))
    indptr = np.asarray(artifact.array("seen_indptr"))
    seen = dict(zip(user_ids, np.diff(indptr).tolist(), strict=True))
    order = random.Random(seed).sample(user_ids, len(user_ids))  # noqa: S311 (traffic, not secrets)
    if artifact.has("item_popularity.npy"):
        popularity = np.asarray(artifact.array("item_popularity"))
        item_order = [item_ids[i] for i in np.argsort(-popularity, kind="stable")]
    else:
        item_order = random.Random(seed + 1).sample(item_ids, len(item_ids))  # noqa: S311
    return IdPool(
        version=artifact.version,
        n_items=len(item_ids),
        users=ZipfSampler.build(order, zipf),
        items=ZipfSampler.build(item_order, zipf),
        seen_count=seen,
    )


_unknown_counter = itertools.count()


def unknown_user(rng: random.Random) -> str:
    """An id no model knows (answered with the popular items, ``fallback: true``)."""
    return f"loadtest-unknown-{rng.getrandbits(40):010x}-{next(_unknown_counter)}"
