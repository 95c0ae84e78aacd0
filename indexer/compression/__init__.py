"""Compressed embedding tables: id -> row mappings for users and items under a row budget.

``make_mapper(method, seed).fit(train, budget)`` returns a :class:`Compression` whose
``users.rows`` / ``items.rows`` (int64, (n_ids, k), -1 = unused slot) say which rows of a user
table and an item table are summed into each id's layer-0 embedding. A budget <= 1 is a fraction
of the full table's rows (n_users + n_items), above 1 a row count; every method uses exactly that
many rows.

Methods (``METHODS``):

- ``full``: one row per id (budget 1.0 only).
- ``hash``: the hashing trick, a seeded universal hash modulo the rows.
- ``double``: two universal hashes, rows summed.
- ``frequency`` / ``double-frequency``: half the rows private to the most frequent ids, the rest
  hashed (once / twice).
- ``qr``: quotient-remainder trick, two rows summed, every id distinct.
- ``graphhash``: the row of the id's Louvain cluster of the bipartite graph, one resolution
  searched to fill the budget (rows left below it go private to the most frequent ids).
- ``double-graphhash``: cluster row plus a hashed row of the same table, summed.
- ``graphhash-plus``: separate resolutions for users and items, a quarter of the rows private to
  the most frequent ids, a quarter as a hashed residual added to the cluster row.
- ``learned``: Learning to Collide: k-means on a truncated SVD embedding, frequent ids private.
"""

from __future__ import annotations

from collections.abc import Callable

from hashrec.indexer.compression.graph import GraphHash, louvain, search_resolution
from hashrec.indexer.compression.hashing import (
    DoubleHashing,
    FrequencyHashing,
    FullTable,
    HashingTrick,
    QuotientRemainder,
)
from hashrec.indexer.compression.learned_hash import LearnedHash, spectral_embedding
from hashrec.indexer.compression.mapping import Compression, Mapper, RowMap, budget_rows, split_rows

METHODS: dict[str, Callable[[int], Mapper]] = {
    "full": lambda seed: FullTable(seed),
    "hash": lambda seed: HashingTrick(seed),
    "double": lambda seed: DoubleHashing(seed),
    "frequency": lambda seed: FrequencyHashing(seed),
    "double-frequency": lambda seed: FrequencyHashing(seed, double=True),
    "qr": lambda seed: QuotientRemainder(seed),
    "graphhash": lambda seed: GraphHash(seed),
    "double-graphhash": lambda seed: GraphHash(seed, double=True),
    "graphhash-plus": lambda seed: GraphHash(
        seed, separate=True, private=0.25, residual=0.25, name="graphhash-plus"
    ),
    "learned": lambda seed: LearnedHash(seed),
}


def make_mapper(method: str, seed: int = 0) -> Mapper:
    """The mapper called ``method`` (see ``METHODS``); unknown names raise ValueError."""
    if method not in METHODS:
        raise ValueError(f"unknown compression {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method](seed)


def compress(train, method: str, budget: float, seed: int = 0) -> Compression:  # type: ignore[no-untyped-def]
    """Fit ``method`` on a training matrix under ``budget``."""
    return make_mapper(method, seed).fit(train, budget)


__all__ = [
    "METHODS",
    "Compression",
    "DoubleHashing",
    "FrequencyHashing",
    "FullTable",
    "GraphHash",
    "HashingTrick",
    "LearnedHash",
    "Mapper",
    "QuotientRemainder",
    "RowMap",
    "budget_rows",
    "compress",
    "louvain",
    "make_mapper",
    "search_resolution",
    "spectral_embedding",
    "split_rows",
]
