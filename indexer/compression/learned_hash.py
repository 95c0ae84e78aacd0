"""Learned hash functions ("Learning to Collide", Ghaemmaghami et al. 2022), cheaply.

Ids collide when they are close in a low-dimensional embedding computed before training: a
truncated SVD of the degree-normalized interaction matrix (the spectral part of GF-CF), clustered
with k-means (faiss). The most frequent ids keep private rows.
"""

from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np
import scipy.sparse as sp
from hashrec.indexer.compression.mapping import Mapper, RowMap, degrees, frequency_order, split_rows
from scipy.sparse.linalg import svds


def spectral_embedding(train: sp.csr_matrix, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows of U sqrt(S) and V sqrt(S) from the top-``dim`` SVD of D_U^-1/2 R D_I^-1/2, L2-normalized."""
    train = sp.csr_matrix(train, dtype=np.float64)
    user_degree, item_degree = degrees(train)
    du = np.where(user_degree > 0, user_degree, 1.0) ** -0.5
    di = np.where(item_degree > 0, item_degree, 1.0) ** -0.5
    normalized = sp.diags(du) @ train @ sp.diags(di)
    k = int(min(dim, min(train.shape) - 1))
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(min(train.shape))
    u, s, vt = svds(normalized, k=k, v0=v0, random_state=seed)
    scale = np.sqrt(np.maximum(s, 0))
    users, items = u * scale, vt.T * scale
    for x in (users, items):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        np.divide(x, norms, out=x, where=norms > 0)
    return users.astype(np.float32), items.astype(np.float32)


def kmeans_labels(x: np.ndarray, k: int, seed: int, niter: int = 20) -> np.ndarray:
    """k-means labels (faiss, spherical) of the rows of ``x``; every one of the k clusters is used."""
    n = len(x)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False)
    km.cp.max_points_per_centroid = max(256, -(-n // k))
    km.cp.min_points_per_centroid = 1  # few points per centroid is the point here: no warning
    km.train(x)
    _, labels = km.index.search(x, 1)
    labels = labels.ravel().astype(np.int64)
    return _fill_empty(labels, k, x, np.asarray(km.centroids))


def _fill_empty(labels: np.ndarray, k: int, x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Give every empty cluster one member (taken from the largest clusters), then relabel 0..k-1."""
    sizes = np.bincount(labels, minlength=k)
    empty = np.flatnonzero(sizes == 0)
    if len(empty):
        # Take, from clusters with > 1 member, the points farthest from their centroid.
        dist = -(x * centroids[labels]).sum(1)
        for cluster in empty:
            donors = np.flatnonzero(sizes[labels] > 1)
            pick = donors[np.argmax(dist[donors])]
            sizes[labels[pick]] -= 1
            labels[pick] = cluster
            sizes[cluster] = 1
            dist[pick] = -np.inf
    return labels


class LearnedHash(Mapper):
    """Learning to Collide: frequent ids private, the rest share rows by k-means on a spectral embedding.

    Parameters
    ----------
    private : float
        Share of each side's rows given, one each, to its most frequent ids.
    dim : int
        SVD rank of the embedding that is clustered.
    """

    name = "learned"

    def __init__(self, seed: int = 0, private: float = 0.25, dim: int = 64) -> None:
        super().__init__(seed)
        self.private = private
        self.dim = dim

    def options(self) -> dict[str, Any]:
        return {**super().options(), "private": self.private, "dim": self.dim}

    def _fit(self, train: sp.csr_matrix, total: int) -> tuple[RowMap, RowMap, dict[str, Any]]:
        n_users, n_items = train.shape
        side_rows = split_rows(total, n_users, n_items)
        started = time.perf_counter()
        embeddings = spectral_embedding(train, self.dim, self.seed)
        svd_seconds = time.perf_counter() - started
        maps = []
        for side, (x, degree, m) in enumerate(zip(embeddings, degrees(train), side_rows, strict=True)):
            maps.append(self._side(x, degree, m, side))
        info = {
            "svd_seconds": round(svd_seconds, 3),
            "cluster_seconds": round(time.perf_counter() - started, 3),
        }
        return maps[0], maps[1], info

    def _side(self, x: np.ndarray, degree: np.ndarray, m: int, side: int) -> RowMap:
        n = len(x)
        head = int(min(round(self.private * m), m - 1, n))
        order = frequency_order(degree)
        rows = np.empty(n, dtype=np.int64)
        rows[order[:head]] = np.arange(head)
        tail = order[head:]
        rows[tail] = head + kmeans_labels(x[tail], m - head, self.seed + side)
        return RowMap(rows, m)
