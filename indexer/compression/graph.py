"""GraphHash (WWW 2025): ids share the row of their bipartite-modularity cluster.

Louvain (scikit-network, BSD) maximizes Barber's bipartite modularity of the training
user x item graph; its resolution sets the number of clusters, and is searched so that the
clusters fill the row budget. Options beyond the paper break the ties inside a cluster:
``private`` rows for the most frequent ids, a hashed ``residual`` row added to the cluster row,
and ``separate`` resolutions for users and items.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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


@dataclass
class Clustering:
    """Cluster labels of every user and item (compact per side, -1 for ids without interactions)."""

    users: np.ndarray
    items: np.ndarray
    resolution: float

    @property
    def n_user_clusters(self) -> int:
        return int(self.users.max() + 1) if (self.users >= 0).any() else 0

    @property
    def n_item_clusters(self) -> int:
        return int(self.items.max() + 1) if (self.items >= 0).any() else 0


def _compact(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..k-1 in order of first appearance of each label's smallest id (stable)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def louvain(train: sp.csr_matrix, resolution: float, seed: int = 0, shuffle: bool = False) -> Clustering:
    """Louvain on the bipartite graph (``force_bipartite``), isolated ids labelled -1.

    Without ``shuffle`` nodes are visited in id order and the seed has no effect.
    """
    from sknetwork.clustering import Louvain

    train = sp.csr_matrix(train, dtype=np.float32)
    user_degree, item_degree = degrees(train)
    active_users, active_items = np.flatnonzero(user_degree), np.flatnonzero(item_degree)
    users = np.full(train.shape[0], -1, dtype=np.int64)
    items = np.full(train.shape[1], -1, dtype=np.int64)
    if len(active_users) and len(active_items):
        graph = train[active_users][:, active_items]
        model = Louvain(
            resolution=resolution,
            random_state=seed,
            shuffle_nodes=shuffle,
            return_probs=False,
            return_aggregate=False,
        )
        model.fit(graph, force_bipartite=True)
        users[active_users] = _compact(np.asarray(model.labels_row_))
        items[active_items] = _compact(np.asarray(model.labels_col_))
    return Clustering(users, items, resolution)


def search_resolution(
    count: Callable[[float], int],
    target: int,
    start: float = 1.0,
    max_runs: int = 14,
    tolerance: float = 0.01,
) -> tuple[float, int, int]:
    """The resolution whose cluster count is the largest found not above ``target``.

    ``count(resolution)`` grows (roughly as a power) with the resolution; a secant step in
    log-log space, kept inside the bracket found so far, usually lands within ``tolerance`` of
    the target in 4-6 runs. Returns (resolution, count, runs).
    """
    below: tuple[float, int] | None = None  # best (resolution, count) with count <= target
    above: tuple[float, int] | None = None  # smallest count > target seen
    r, runs = start, 0
    while runs < max_runs:
        c = count(r)
        runs += 1
        if c <= target:
            if below is None or c > below[1] or (c == below[1] and r > below[0]):
                below = (r, c)
            if c >= (1 - tolerance) * target:
                break
        elif above is None or c < above[1] or (c == above[1] and r < above[0]):
            above = (r, c)
        step = _next_resolution(below, above, target)
        if step is None:
            break
        r = step
    if below is None:  # even tiny resolutions give too many clusters: return the coarsest seen
        raise ValueError(f"no resolution gives at most {target} clusters (tried {runs})")
    return below[0], below[1], runs


def _next_resolution(
    below: tuple[float, int] | None, above: tuple[float, int] | None, target: int
) -> float | None:
    if below is not None and above is not None:
        (r0, c0), (r1, c1) = below, above
        if r1 / r0 < 1.0001:
            return None
        if c0 > 0 and c1 > c0:  # secant in log-log, kept strictly inside the bracket
            t = (math.log(target) - math.log(c0)) / (math.log(c1) - math.log(c0))
            t = min(max(t, 0.1), 0.9)
        else:
            t = 0.5
        return math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))
    if below is not None:
        r0, c0 = below
        return r0 * max(target / max(c0, 1), 1.5) if c0 < target else r0 * 1.5
    assert above is not None
    r1, c1 = above
    return r1 * min(target / c1, 0.67)


def fill_private(labels: np.ndarray, n_rows: int, degree: np.ndarray, seed: int) -> np.ndarray:
    """Turn cluster labels (-1 = none) into exactly ``n_rows`` rows.

    Ids without a label hash into the clusters; rows left over after the clusters go, one each,
    to the most frequent ids that still share a row.
    """
    labels = labels.copy()
    n_clusters = int(labels.max() + 1) if (labels >= 0).any() else 0
    if n_clusters > n_rows:
        raise ValueError(f"{n_clusters} clusters exceed {n_rows} rows")
    missing = np.flatnonzero(labels < 0)
    if len(missing):
        if n_clusters == 0:
            labels[missing] = UniversalHash(seed)(missing, n_rows)
            n_clusters = int(np.unique(labels).size)
            labels = _compact(labels)
        else:
            labels[missing] = UniversalHash(seed)(missing, n_clusters)
    spare = n_rows - n_clusters
    if spare > 0:
        sizes = np.bincount(labels, minlength=n_clusters)
        shared = frequency_order(degree)
        shared = shared[sizes[labels[shared]] > 1]
        # Moving an id out leaves its cluster smaller; a cluster of two frees both ids after one move.
        next_row = n_clusters
        for ident in shared:
            if next_row >= n_rows:
                break
            if sizes[labels[ident]] > 1:
                sizes[labels[ident]] -= 1
                labels[ident] = next_row
                next_row += 1
        if next_row < n_rows:  # every id already private: cannot happen while n_rows <= n
            raise ValueError("more rows than ids")
    return labels


class GraphHash(Mapper):
    """Ids map to the row of their Louvain cluster (paper: one resolution for the whole graph).

    Parameters
    ----------
    seed : int
        Louvain's random state and the hashes'.
    separate : bool
        Search one resolution per side, so each meets its share of the rows (users and items
        split in proportion to their counts); otherwise one resolution for both sides.
    private : float
        Share of each side's rows given, one each, to its most frequent ids.
    residual : float
        Share of each side's rows forming a residual table: every id that is not private adds a
        hashed row of it to its cluster row, so ids of one cluster no longer tie.
    double : bool
        DoubleGraphHash: the cluster row plus a hashed row of the same table, summed.
    views : int
        With ``separate``: sum the rows of this many Louvain clusterings (visiting the nodes in
        different seeded orders), each with an equal share of the cluster rows; ids that share
        a cluster in one view rarely share it in all.
    """

    name = "graphhash"

    def __init__(
        self,
        seed: int = 0,
        separate: bool = False,
        private: float = 0.0,
        residual: float = 0.0,
        double: bool = False,
        views: int = 1,
        name: str | None = None,
    ) -> None:
        super().__init__(seed)
        if not 0 <= private + residual < 1:
            raise ValueError("private + residual must lie in [0, 1)")
        self.separate = separate
        self.private = private
        self.residual = residual
        self.double = double
        if views > 1 and not separate:
            raise ValueError("several views need separate resolutions")
        self.views = views
        self.name = name or ("double-graphhash" if double else "graphhash")

    def options(self) -> dict[str, Any]:
        return {
            **super().options(),
            "separate": self.separate,
            "private": self.private,
            "residual": self.residual,
            "double": self.double,
            "views": self.views,
        }

    def _fit(self, train: sp.csr_matrix, total: int) -> tuple[RowMap, RowMap, dict[str, Any]]:
        n_users, n_items = train.shape
        side_rows = split_rows(total, n_users, n_items)
        residual_rows = [round(self.residual * m) for m in side_rows]
        private_rows = [round(self.private * m) for m in side_rows]
        cluster_budget = [m - r - p for m, r, p in zip(side_rows, residual_rows, private_rows, strict=True)]
        if min(cluster_budget) < 1:
            raise ValueError("the budget leaves no row for clusters")
        cache: dict[tuple[float, int], Clustering] = {}
        started = time.perf_counter()

        def run(resolution: float, view: int = 0) -> Clustering:
            if (resolution, view) not in cache:
                cache[resolution, view] = louvain(train, resolution, self.seed + view, shuffle=view > 0)
            return cache[resolution, view]

        views: list[tuple[np.ndarray, np.ndarray]] = []
        view_rows: list[list[int]] = [[], []]
        if self.separate:
            resolutions: list[float] = []
            for view in range(self.views):
                targets = [b // self.views + (b % self.views if view == 0 else 0) for b in cluster_budget]
                r_u, _, _ = search_resolution(partial(_user_clusters, run, view), targets[0])
                r_i, _, _ = search_resolution(partial(_item_clusters, run, view), targets[1])
                views.append((run(r_u, view).users, run(r_i, view).items))
                resolutions += [r_u, r_i]
                view_rows[0].append(targets[0])
                view_rows[1].append(targets[1])
        else:
            target = sum(cluster_budget)
            r, _, _ = search_resolution(lambda r: run(r).n_user_clusters + run(r).n_item_clusters, target)
            views.append((run(r).users, run(r).items))
            resolutions = [r]
            # One resolution: each side's table is its own cluster count plus its share of the
            # rows left over, so the total still meets the budget exactly.
            counts = [run(r).n_user_clusters, run(r).n_item_clusters]
            spare = target - sum(counts)
            spare_u = min(round(spare * n_users / (n_users + n_items)), n_users - counts[0])
            cluster_budget = [counts[0] + spare_u, counts[1] + spare - spare_u]
            view_rows = [[cluster_budget[0]], [cluster_budget[1]]]
            side_rows = (
                cluster_budget[0] + residual_rows[0] + private_rows[0],
                cluster_budget[1] + residual_rows[1] + private_rows[1],
            )
        cluster_seconds = time.perf_counter() - started
        user_degree, item_degree = degrees(train)
        maps = []
        for side, degree in enumerate((user_degree, item_degree)):
            labels = [view[side] for view in views]
            maps.append(
                self._side(
                    labels,
                    degree,
                    side_rows[side],
                    private_rows[side],
                    residual_rows[side],
                    view_rows[side],
                    side,
                )
            )
        info = {
            "resolutions": [round(x, 4) for x in resolutions],
            "louvain_runs": len(cache),
            "clusters": [int(c.max() + 1) if (c >= 0).any() else 0 for view in views for c in view],
            "cluster_seconds": round(cluster_seconds, 3),
        }
        return maps[0], maps[1], info

    def _side(
        self,
        labels: list[np.ndarray],
        degree: np.ndarray,
        m: int,
        n_private: int,
        n_residual: int,
        view_rows: list[int],
        side: int,
    ) -> RowMap:
        """Rows [0, clusters): the views' clusters; then private rows; then the residual rows."""
        n = len(degree)
        hashes = np.random.default_rng([self.seed, side])
        order = frequency_order(degree)
        head = order[: min(n_private, n)]
        # Private ids leave their clusters; the others keep one row per view.
        rest = np.ones(n, dtype=bool)
        rest[head] = False
        cluster_rows = m - n_residual - len(head)
        view_rows = [*view_rows[:-1], cluster_rows - sum(view_rows[:-1])]
        slots = []
        offset = 0
        for view, (view_labels, rows) in enumerate(zip(labels, view_rows, strict=True)):
            slot = np.full(n, -1, dtype=np.int64)
            slot[rest] = offset + fill_private(
                _compact_keep_missing(view_labels[rest]), rows, degree[rest], self.seed + side + 7 * view
            )
            slots.append(slot)
            offset += rows
        slots[0][head] = cluster_rows + np.arange(len(head))
        if n_residual:
            extra = np.full(n, -1, dtype=np.int64)
            extra[rest] = m - n_residual + UniversalHash(hashes)(np.flatnonzero(rest), n_residual)
            slots.append(extra)
        if self.double:
            slots.append(UniversalHash(hashes)(np.arange(n), m))
        return RowMap(np.stack(slots, axis=1), m)


def _compact_keep_missing(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    known = labels >= 0
    if known.any():
        out[known] = _compact(labels[known])
    return out


def _user_clusters(run: Callable[[float, int], Any], view: int, resolution: float) -> int:
    """User clusters of one view's clustering at a resolution."""
    return int(run(resolution, view).n_user_clusters)


def _item_clusters(run: Callable[[float, int], Any], view: int, resolution: float) -> int:
    """Item clusters of one view's clustering at a resolution."""
    return int(run(resolution, view).n_item_clusters)
