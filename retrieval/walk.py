"""The walk scorer: a user's scores computed from the interaction graph at request time.

A three-step random walk item -> user -> item with degree normalization (LinkProp, Cooper et
al. 2014; GF-CF's linear filter R~^T R~ is the case a = 1, b = c = 1/2)::

    score(h, i) = d_i^-c * sum_v R[v, i] * d_v^-a * sum_{j in h} R[v, j] * d_j^-b

for a history h of item rows, d the training degrees. It is a full-rank item-item filter that
needs no vectors: the artifact's interaction graph (user -> items, already kept for exclusions,
and item -> users) is the model. A known user and a visitor with the same history get the same
scores, by the same code. Queries for the Hamming first stage are codes too:
``sign(sum_{j in h} query_scale[j] * query_weights[j])``, packed, where ``query_weights`` (n_items,
bits, int8 with a float32 scale per item) is the
learned projection of each item's contribution (``indexer.walk``). numpy, and one numba kernel for
the candidates' scores where numba is installed (the same scores, summed in another order).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: name -> (dtype, number of dimensions) of the arrays a walk model adds to the graph it shares
WALK_ARRAYS: dict[str, tuple[str, int]] = {
    "item_users_indptr": ("int64", 1),  # CSR of each item's training users (the transposed graph)
    "item_users_indices": ("int32", 1),
    "query_weights": ("int8", 2),  # (n_items, bits): each history item's share of a query code ...
    "query_scale": ("float32", 1),  # (n_items,): ... times its scale
}


@dataclass(frozen=True)
class WalkExponents:
    """Degree exponents of the walk: a on the middle user, b on history items, c on scored items."""

    user: float = 0.75
    history: float = 0.75
    item: float = 0.25

    def __post_init__(self) -> None:
        for name in ("user", "history", "item"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 2.0:
                raise ValueError(f"walk exponent {name} must be a number in [0, 2], got {value!r}")

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> WalkExponents:
        """From the manifest's ``config.walk`` (ValueError naming what is wrong)."""
        unknown = set(record) - {"user", "history", "item"}
        if unknown:
            raise ValueError(f"walk has unknown keys {sorted(unknown)}")
        return cls(**{k: v for k, v in record.items()})  # type: ignore[arg-type]


def degree_weights(degree: np.ndarray, exponent: float) -> np.ndarray:
    """max(degree, 1) ** -exponent as float32."""
    return (np.maximum(np.asarray(degree, dtype=np.float64), 1.0) ** -exponent).astype(np.float32)


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(concatenated neighbours of ``rows``, the position in ``rows`` each came from)."""
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return indices[np.repeat(starts, lengths) + offsets], owner


class GraphWalk:
    """Walk scores and query codes for histories, over one model's graph.

    Parameters
    ----------
    user_items : (indptr int64, indices int32)
        Each user's training items (the artifact's ``seen_*``).
    item_users : (indptr int64, indices int32)
        Each item's training users.
    query_weights : ndarray of int8 (n_items, bits)
        Per-item contributions to a query code, times ``query_scale``.
    query_scale : ndarray of float32 (n_items,)
    exponents : WalkExponents
    kernel : bool
        Score candidates with the numba kernel where numba is installed (False: numpy always).
    """

    def __init__(
        self,
        user_items: tuple[np.ndarray, np.ndarray],
        item_users: tuple[np.ndarray, np.ndarray],
        query_weights: np.ndarray,
        query_scale: np.ndarray,
        exponents: WalkExponents,
        kernel: bool = True,
    ) -> None:
        self.user_indptr, self.user_indices = (np.asarray(a) for a in user_items)
        self.item_indptr, self.item_indices = (np.asarray(a) for a in item_users)
        self.query_weights = np.asarray(query_weights)
        self.query_scale = np.asarray(query_scale)
        self.exponents = exponents
        self.n_items = len(self.item_indptr) - 1
        self.user_weight = degree_weights(np.diff(self.user_indptr), exponents.user)
        item_degree = np.diff(self.item_indptr)
        self.history_weight = degree_weights(item_degree, exponents.history)
        self.item_weight = degree_weights(item_degree, exponents.item)
        from hashrec.retrieval.kernels import compiled_kernels

        self._kernels: Any = compiled_kernels() if kernel else None
        self._scratch = threading.local()  # a per-thread zeroed mass vector for the kernel

    def user_mass(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted users reached from ``history``, their walk mass d_v^-a sum_j R[v, j] d_j^-b)."""
        history = np.asarray(history, dtype=np.int64)
        users, owner = _gather(self.item_indptr, self.item_indices, history)
        reached, slot = np.unique(users, return_inverse=True)
        mass = np.bincount(slot, weights=self.history_weight[history][owner], minlength=len(reached))
        return reached.astype(np.int64), mass * self.user_weight[reached]

    def score(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """float32 walk scores of item rows ``items`` for ``history``."""
        items = np.asarray(items, dtype=np.int64)
        if self._kernels is not None:
            mass = getattr(self._scratch, "mass", None)
            if mass is None:
                mass = self._scratch.mass = np.zeros(len(self.user_weight), np.float64)
            return self._kernels.walk_candidate_scores(  # type: ignore[no-any-return]
                self.item_indptr,
                self.item_indices,
                np.asarray(history, dtype=np.int64),
                self.history_weight,
                self.user_weight,
                self.item_weight,
                items,
                mass,
            )
        reached, mass = self.user_mass(history)
        if not len(reached) or not len(items):
            return np.zeros(len(items), np.float32)
        users, owner = _gather(self.item_indptr, self.item_indices, items)
        pos = np.searchsorted(reached, users).clip(max=len(reached) - 1)
        contrib = np.where(reached[pos] == users, mass[pos], 0.0)
        totals = np.bincount(owner, weights=contrib, minlength=len(items))
        return (totals * self.item_weight[items]).astype(np.float32)

    def score_all(self, history: np.ndarray) -> np.ndarray:
        """float32 walk scores of every item for ``history``."""
        reached, mass = self.user_mass(history)
        items, owner = _gather(self.user_indptr, self.user_indices, reached)
        totals = np.bincount(items, weights=mass[owner], minlength=self.n_items)
        return (totals * self.item_weight).astype(np.float32)

    def query_code(self, history: np.ndarray) -> np.ndarray:
        """Packed uint8 query code (1, bits / 8) of ``history``: sign of its items' summed weights."""
        rows = np.asarray(history, dtype=np.int64)
        weights = self.query_weights[rows].astype(np.float32) * self.query_scale[rows, None]
        total = weights.sum(axis=0, keepdims=True)
        return np.packbits(total > 0, axis=1)
