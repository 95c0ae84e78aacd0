"""ID-hashing baselines: full table, hashing trick, double hashing, frequency-aware, quotient-remainder."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from hashrec.indexer.compression.mapping import (
    Mapper,
    RowMap,
    UniversalHash,
    degrees,
    frequency_order,
    split_rows,
)


class FullTable(Mapper):
    """One private row per id (the uncompressed table); only a budget of 1.0 fits it."""

    name = "full"

    def _fit(self, train: sp.csr_matrix, total: int) -> tuple[RowMap, RowMap, dict[str, Any]]:
        n_users, n_items = train.shape
        if total != n_users + n_items:
            raise ValueError(f"the full table needs budget 1.0 ({n_users + n_items} rows), not {total} rows")
        return RowMap.identity(n_users), RowMap.identity(n_items), {}


class _PerSide(Mapper):
    """Methods that compress users and items alike, rows split in proportion to the id counts."""

    def _fit(self, train: sp.csr_matrix, total: int) -> tuple[RowMap, RowMap, dict[str, Any]]:
        n_users, n_items = train.shape
        user_rows, item_rows = split_rows(total, n_users, n_items)
        user_degree, item_degree = degrees(train)
        rng = np.random.default_rng(self.seed)
        users = self.side(n_users, user_rows, user_degree, rng)
        items = self.side(n_items, item_rows, item_degree, rng)
        return users, items, {}

    def side(self, n: int, m: int, degree: np.ndarray, rng: np.random.Generator) -> RowMap:
        raise NotImplementedError


class HashingTrick(_PerSide):
    """Row = universal hash of the id modulo the side's row count."""

    name = "hash"

    def side(self, n: int, m: int, degree: np.ndarray, rng: np.random.Generator) -> RowMap:
        return RowMap(UniversalHash(rng)(np.arange(n), m), m)


class DoubleHashing(_PerSide):
    """Two independent universal hashes into one table, rows summed."""

    name = "double"

    def side(self, n: int, m: int, degree: np.ndarray, rng: np.random.Generator) -> RowMap:
        ids = np.arange(n)
        return RowMap(np.stack([UniversalHash(rng)(ids, m), UniversalHash(rng)(ids, m)], axis=1), m)


class FrequencyHashing(_PerSide):
    """The ``private`` share of rows goes to the most frequent ids, one each; the rest hash into
    the remaining rows (with ``double``, two hashed rows summed)."""

    name = "frequency"

    def __init__(self, seed: int = 0, private: float = 0.5, double: bool = False) -> None:
        super().__init__(seed)
        self.private = private
        self.double = double
        if double:
            self.name = "double-frequency"

    def side(self, n: int, m: int, degree: np.ndarray, rng: np.random.Generator) -> RowMap:
        head = int(min(max(round(self.private * m), 0), m - 1, n))
        shared = m - head
        order = frequency_order(degree)
        slots = 2 if self.double else 1
        rows = np.full((n, slots), -1, dtype=np.int64)
        rows[order[:head], 0] = np.arange(head)
        tail = order[head:]
        for slot in range(slots):
            rows[tail, slot] = head + UniversalHash(rng)(tail, shared)
        return RowMap(rows, m)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "private": self.private, "double": self.double}


def quotient_remainder(n: int, m: int) -> tuple[int, int]:
    """(quotient rows, remainder rows) summing to ``m`` with every id distinct when possible.

    The remainder table takes as many rows as it can while quotient x remainder >= n.
    """
    if m < 2:
        raise ValueError("the quotient-remainder trick needs at least 2 rows")
    for nq in range(1, m // 2 + 1):
        if nq * (m - nq) >= n:
            return nq, m - nq
    return m // 2, m - m // 2  # too few rows to keep ids distinct: quotients wrap


class QuotientRemainder(_PerSide):
    """Shi et al. 2020: rows ``id // nr`` of a quotient table and ``id % nr`` of a remainder table,
    summed; every (quotient, remainder) pair is distinct while nq * nr >= n."""

    name = "qr"

    def side(self, n: int, m: int, degree: np.ndarray, rng: np.random.Generator) -> RowMap:
        nq, nr = quotient_remainder(n, m)
        ids = rng.permutation(n)  # a seeded relabelling so the seed matters like for hashing
        rows = np.stack([nr + (ids // nr) % nq, ids % nr], axis=1)
        return RowMap(rows, m)
