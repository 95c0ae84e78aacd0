"""The mapping interface: every user and item id -> one or more rows of a small shared table."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Mersenne prime 2^31 - 1: (a * id + b) stays inside int64 for ids below 2^31.
PRIME = (1 << 31) - 1


@dataclass(frozen=True)
class RowMap:
    """Rows of one side's table for every id.

    ``rows`` is int64 (n_ids, k): the layer-0 vector of id ``i`` is the sum of
    ``table[rows[i, j]]`` over its slots ``j`` with ``rows[i, j] >= 0`` (-1 marks an unused slot,
    e.g. a frequent id that owns a private row among hashed ids with two rows).
    ``n_rows`` is the table's size: the parameters are ``n_rows * dim``.
    """

    rows: np.ndarray
    n_rows: int

    def __post_init__(self) -> None:
        rows = np.asarray(self.rows, dtype=np.int64)
        if rows.ndim == 1:
            rows = rows[:, None]
        object.__setattr__(self, "rows", np.ascontiguousarray(rows))
        if rows.ndim != 2 or rows.shape[1] < 1:
            raise ValueError(f"rows must be (n_ids, k), got shape {rows.shape}")
        if rows.size and (rows.max() >= self.n_rows or rows.min() < -1):
            raise ValueError(f"rows must lie in [-1, {self.n_rows})")
        if rows.size and (rows.max(axis=1) < 0).any():
            raise ValueError("every id needs at least one row")

    @property
    def n_ids(self) -> int:
        return int(self.rows.shape[0])

    @property
    def slots(self) -> int:
        return int(self.rows.shape[1])

    @classmethod
    def identity(cls, n: int) -> RowMap:
        return cls(np.arange(n, dtype=np.int64), n)

    def is_identity(self) -> bool:
        return (
            self.slots == 1
            and self.n_rows == self.n_ids
            and bool(np.array_equal(self.rows[:, 0], np.arange(self.n_ids)))
        )

    def used_rows(self) -> int:
        """Rows that at least one id reads (<= n_rows)."""
        return int(np.unique(self.rows[self.rows >= 0]).size)

    def distinct_ids(self) -> int:
        """Number of distinct row combinations: ids that can still get different vectors."""
        rows = np.sort(self.rows, axis=1)
        return int(np.unique(rows, axis=0).shape[0]) if rows.size else 0


@dataclass(frozen=True)
class Compression:
    """A fitted mapping of both sides: ``users`` and ``items`` index two separate tables."""

    method: str
    budget: float
    users: RowMap
    items: RowMap
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return self.users.n_rows + self.items.n_rows

    @property
    def full_rows(self) -> int:
        return self.users.n_ids + self.items.n_ids

    def parameters(self, dim: int) -> int:
        return self.n_rows * dim

    def summary(self, dim: int | None = None) -> dict[str, Any]:
        """What the manifest records: method, budget, rows and (given dim) parameter count."""
        out: dict[str, Any] = {
            "method": self.method,
            "budget": self.budget,
            "user_rows": self.users.n_rows,
            "item_rows": self.items.n_rows,
            "rows": self.n_rows,
            "full_rows": self.full_rows,
            "fraction": round(self.n_rows / max(self.full_rows, 1), 6),
            **self.info,
        }
        if dim is not None:
            out["parameters"] = self.parameters(dim)
            out["full_parameters"] = self.full_rows * dim
        return out


def budget_rows(budget: float, n_ids: int) -> int:
    """Rows a budget allows: a fraction of ``n_ids`` if ``budget <= 1``, else a row count."""
    if not np.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be > 0, got {budget}")
    if budget <= 1:
        rows = round(budget * n_ids)
    else:
        if budget != int(budget):
            raise ValueError(f"a budget above 1 is a row count and must be an integer, got {budget}")
        rows = int(budget)
    if rows > n_ids:
        raise ValueError(f"budget {budget} asks for {rows} rows, more than the {n_ids} ids")
    return max(int(rows), 2)


def split_rows(total: int, n_users: int, n_items: int) -> tuple[int, int]:
    """Split ``total`` rows between users and items in proportion to their counts (>= 1 each)."""
    users = round(total * n_users / (n_users + n_items))
    users = int(min(max(users, 1), n_users, total - 1))
    items = total - users
    if items > n_items:  # only when total is close to n_users + n_items
        users, items = total - n_items, n_items
    return users, items


def degrees(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Training interactions per user and per item."""
    train = sp.csr_matrix(train)
    users = np.diff(train.indptr).astype(np.int64)
    items = np.bincount(train.indices, minlength=train.shape[1]).astype(np.int64)
    return users, items


def frequency_order(degree: np.ndarray) -> np.ndarray:
    """Ids from the most to the least frequent (ties: smaller id first)."""
    return np.lexsort((np.arange(len(degree)), -degree))


class UniversalHash:
    """h(x) = ((a x + b) mod p) mod m with a, b drawn from a seed (Carter-Wegman)."""

    def __init__(self, seed: int | np.random.Generator) -> None:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.a = int(rng.integers(1, PRIME))
        self.b = int(rng.integers(0, PRIME))

    def __call__(self, ids: np.ndarray, m: int) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        return ((self.a * ids + self.b) % PRIME) % m


class Mapper(ABC):
    """Fits an id -> rows mapping of both sides under a row budget.

    ``fit(train, budget)`` must: be deterministic for a seed, use exactly the budget's rows
    (``budget_rows(budget, n_users + n_items)``, split between users and items as the method
    decides), and map every id, including ids without training interactions.
    """

    name: str = "mapper"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: sp.csr_matrix, budget: float) -> Compression:
        train = sp.csr_matrix(train)
        train.sum_duplicates()
        n_users, n_items = train.shape
        total = budget_rows(budget, n_users + n_items)
        started = time.perf_counter()
        users, items, info = self._fit(train, total)
        seconds = time.perf_counter() - started
        if users.n_rows + items.n_rows != total:
            raise AssertionError(f"{self.name}: {users.n_rows} + {items.n_rows} rows, budget is {total}")
        if users.n_ids != n_users or items.n_ids != n_items:
            raise AssertionError(f"{self.name}: mapped {users.n_ids}/{items.n_ids} ids")
        info = {**info, "mapping_seconds": round(seconds, 3), "seed": self.seed}
        return Compression(self.name, float(budget), users, items, info)

    @abstractmethod
    def _fit(self, train: sp.csr_matrix, total: int) -> tuple[RowMap, RowMap, dict[str, Any]]:
        """Return (user map, item map, info) with exactly ``total`` rows together."""

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed}
