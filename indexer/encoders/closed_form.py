"""A training-free spectral graph-filter encoder in the spirit of GF-CF and SVD-GCN.

With R~ = D_U^-1/2 R D_I^-1/2, singular values s_1 >= ... >= s_k and right singular vectors V_k,
GF-CF's ideal low-pass filter scores a user as r_u D_I^-1/2 V_k V_k^T D_I^1/2. Weighting each
component by (s_j / s_1)^p keeps more of the spectrum useful (p = 0 is the ideal filter; SVD-GCN
weights components by a growing function of s for the same reason). It factors into inner products:

    user u -> r_u D_I^-beta V_k diag(w)^1/2        item i -> D_I^beta V_k[i] diag(w)^1/2

with w_j = (s_j / s_1)^p, split between the two sides so neither carries all of it (the codes are
learned on the item side). beta = 1/2 is the paper's filter. The rank and p are chosen on a holdout
of the training data. scipy and numpy only: no torch, a randomized SVD and two sparse products.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from hashrec.indexer.data.split import holdout
from hashrec.indexer.encoders.base import Embeddings, Encoder
from hashrec.indexer.ranking_metrics import exact_recall

log = logging.getLogger(__name__)


@dataclass
class ClosedFormConfig:
    """dim: rank k of the SVD (the vector length), 0 to choose it on a validation holdout;
    power: the spectral weight exponent p, None to choose it on the holdout; beta: the degree
    exponent on items; svd_iters: power iterations of the randomized SVD."""

    dim: int = 0
    power: float | None = None
    beta: float = 0.5
    seed: int = 0
    ranks: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 1536)
    powers: tuple[float, ...] = (0.0, 0.5, 1.0)
    svd_iters: int = 3
    val_fraction: float = 0.1
    max_val_users: int = 5000


def normalized_interactions(train: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(D_U^-1/2 R D_I^-1/2, item degrees), sparse."""
    r = sp.csr_matrix(train, dtype=np.float32)
    user_degree = np.asarray(r.sum(axis=1)).ravel()
    item_degree = np.asarray(r.sum(axis=0)).ravel()
    user_scale = np.where(user_degree > 0, user_degree, 1.0) ** -0.5
    item_scale = np.where(item_degree > 0, item_degree, 1.0) ** -0.5
    normalized = sp.diags(user_scale.astype(np.float32)) @ r @ sp.diags(item_scale.astype(np.float32))
    return normalized.tocsr().astype(np.float32), item_degree


def randomized_svd(
    matrix: sp.csr_matrix, rank: int, iters: int = 3, oversample: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``rank`` singular values (descending) and right singular vectors (n_cols, rank).

    Halko, Martinsson and Tropp (2011), with ``iters`` re-orthonormalized power iterations:
    much faster than ARPACK at ranks in the hundreds, and deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    width = min(rank + oversample, *matrix.shape)
    transposed = matrix.T.tocsr()
    probe = rng.standard_normal((matrix.shape[1], width), dtype=np.float32)
    basis, _ = np.linalg.qr(np.asarray(matrix @ probe))
    for _ in range(iters):
        back, _ = np.linalg.qr(np.asarray(transposed @ basis))
        basis, _ = np.linalg.qr(np.asarray(matrix @ back))
    projected = np.asarray(transposed @ basis).T  # (width, n_cols): basis^T A
    _, singular, vt = np.linalg.svd(projected, full_matrices=False)
    return singular[:rank].astype(np.float32), np.ascontiguousarray(vt[:rank].T, dtype=np.float32)


class ClosedForm(Encoder):
    """Spectrally weighted low-pass graph filter from a truncated SVD, factored into vectors."""

    name = "gfcf"

    def __init__(self, config: ClosedFormConfig | None = None) -> None:
        self.cfg = config or ClosedFormConfig()
        self.history: list[dict[str, object]] = []

    def config(self) -> dict[str, object]:
        return {"encoder": self.name, **asdict(self.cfg)}

    def fit(self, train: sp.csr_matrix, validation: sp.csr_matrix | None = None) -> Embeddings:
        """Closed form; with ``dim=0`` or ``power=None`` those are chosen on a holdout of ``train``."""
        started = time.perf_counter()
        rank, power = self.cfg.dim, self.cfg.power
        if not rank or power is None:
            rank, power = self.choose(train)
        singular, basis = self.spectrum(train, rank)
        users, items = self.factor(train, singular, basis, power)
        seconds = round(time.perf_counter() - started, 2)
        self.history.append({"seconds": seconds, "rank": users.shape[1], "power": power})
        log.info("closed-form encoder: rank %d, power %g in %.1fs", users.shape[1], power, seconds)
        return Embeddings(users, items)

    def spectrum(self, train: sp.csr_matrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """Singular values and right singular vectors of the normalized matrix, strongest first."""
        normalized, _ = normalized_interactions(train)
        k = max(1, min(rank, min(normalized.shape) - 1))
        return randomized_svd(normalized, k, iters=self.cfg.svd_iters, seed=self.cfg.seed)

    def factor(
        self, train: sp.csr_matrix, singular: np.ndarray, basis: np.ndarray, power: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """User and item vectors of the weighted filter on the leading ``len(singular)`` components."""
        users, items = self._unweighted(train, basis)
        half_weight = _half_weights(singular, power)
        return _contiguous(users * half_weight), _contiguous(items * half_weight)

    def variants(
        self,
        train: sp.csr_matrix,
        singular: np.ndarray,
        basis: np.ndarray,
        ranks: Iterable[int],
        powers: Iterable[float],
    ) -> Iterator[tuple[int, float, np.ndarray, np.ndarray]]:
        """(rank, power, users, items) for every pair, from one unweighted factoring: the leading
        components and their weights are all that change."""
        users, items = self._unweighted(train, basis)
        for rank in ranks:
            for power in powers:
                half_weight = _half_weights(singular[:rank], power)
                yield rank, power, users[:, :rank] * half_weight, items[:, :rank] * half_weight

    def _unweighted(self, train: sp.csr_matrix, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The p = 0 (ideal filter) user and item vectors on ``basis``."""
        item_degree = np.asarray(sp.csr_matrix(train).sum(axis=0)).ravel()
        degree = np.maximum(item_degree, 1.0).astype(np.float32)
        items = basis * (degree**self.cfg.beta)[:, None]
        users = sp.csr_matrix(train, dtype=np.float32) @ (basis * (degree**-self.cfg.beta)[:, None])
        return np.asarray(users), items

    def choose(self, train: sp.csr_matrix) -> tuple[int, float]:
        """The (rank, power) with the best validation Recall@20 (one SVD at the largest rank;
        smaller ranks are its leading components). A fixed ``dim`` or ``power`` is kept."""
        fit, validation = holdout(train, self.cfg.val_fraction, self.cfg.seed)
        limit = max(1, min(fit.shape) - 1)  # rank 1 even for one user or two items
        if self.cfg.dim:
            ranks = [min(self.cfg.dim, limit)]
        else:  # past a quarter of the spectrum the filter is no longer low-pass; skip those ranks
            cap = max(min(fit.shape) // 4, min(self.cfg.ranks))
            ranks = sorted({min(r, limit) for r in self.cfg.ranks if 1 <= r <= cap})
        powers = self.cfg.powers if self.cfg.power is None else (self.cfg.power,)
        singular, basis = self.spectrum(fit, ranks[-1])
        eval_users = np.flatnonzero(np.diff(validation.indptr) > 0)
        if len(eval_users) > self.cfg.max_val_users:
            rng = np.random.default_rng(self.cfg.seed)
            eval_users = np.sort(rng.choice(eval_users, self.cfg.max_val_users, replace=False))
        scores: dict[tuple[int, float], float] = {}
        for rank, power, users, items in self.variants(fit, singular, basis, ranks, powers):
            scores[rank, power] = exact_recall(users, items, fit, validation, eval_users)
        # Ties go to the smaller rank (shorter vectors), then the smaller power.
        best = max(scores, key=lambda key: (round(scores[key], 4), -key[0], -key[1]))
        self.history.append(
            {"search": {f"{r}/p{p:g}": round(v, 5) for (r, p), v in scores.items()}, "chosen": list(best)}
        )
        log.info("closed-form search %s -> rank %d, power %g", scores, *best)
        return best


def _half_weights(singular: np.ndarray, power: float) -> np.ndarray:
    """(s_j / s_1)^(p/2): each side's half of the spectral weight."""
    top = max(float(singular[0]), 1e-12)
    return (np.clip(singular, 0.0, None) / top) ** (power / 2)


def _contiguous(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)
