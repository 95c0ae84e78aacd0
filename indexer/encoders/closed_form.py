"""A training-free graph-filter encoder in the spirit of GF-CF's ideal low-pass filter.

With R~ = D_U^-1/2 R D_I^-1/2 and V_k its top-k right singular vectors, GF-CF's ideal filter
scores a user as r_u D_I^-1/2 V_k V_k^T D_I^1/2. That factors exactly into inner products:

    user u -> r_u D_I^-beta V_k        item i -> D_I^beta V_k[i]

(beta = 1/2 is the paper's filter; beta trades popularity against personalisation). scipy only:
no torch, a truncated SVD and two sparse products.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from indexer.encoders.base import Embeddings, Encoder

log = logging.getLogger(__name__)


@dataclass
class ClosedFormConfig:
    """dim: rank k of the SVD (the vector length), 0 to choose it on a validation holdout;
    beta: the degree exponent on items."""

    dim: int = 0
    beta: float = 0.5
    seed: int = 0
    ranks: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
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


class ClosedForm(Encoder):
    """Truncated-SVD ideal low-pass filter, factored into user and item vectors."""

    name = "gfcf"

    def __init__(self, config: ClosedFormConfig | None = None) -> None:
        self.cfg = config or ClosedFormConfig()
        self.history: list[dict[str, object]] = []

    def config(self) -> dict[str, object]:
        return {"encoder": self.name, **asdict(self.cfg)}

    def fit(self, train: sp.csr_matrix, validation: sp.csr_matrix | None = None) -> Embeddings:
        """Closed form; with ``dim=0`` the rank is chosen on a holdout of ``train``."""
        started = time.perf_counter()
        rank = self.cfg.dim or self.choose_rank(train)
        users, items = self._factor(train, rank)
        self.history.append({"seconds": round(time.perf_counter() - started, 2), "rank": users.shape[1]})
        log.info("closed-form encoder: rank %d in %.1fs", users.shape[1], time.perf_counter() - started)
        return Embeddings(users, items)

    def _factor(self, train: sp.csr_matrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """User and item vectors of the rank-``rank`` ideal filter."""
        normalized, item_degree = normalized_interactions(train)
        k = max(1, min(rank, min(normalized.shape) - 1))
        _, singular, vt = svds(normalized, k=k, random_state=self.cfg.seed)
        basis = vt[np.argsort(-singular)].T.astype(np.float32)  # (n_items, k), strongest first
        degree = np.maximum(item_degree, 1.0).astype(np.float32)
        items = basis * (degree**self.cfg.beta)[:, None]
        users = sp.csr_matrix(train, dtype=np.float32) @ (basis * (degree**-self.cfg.beta)[:, None])
        return np.ascontiguousarray(users, dtype=np.float32), np.ascontiguousarray(items, dtype=np.float32)

    def choose_rank(self, train: sp.csr_matrix) -> int:
        """The candidate rank with the best validation Recall@20 (one SVD at the largest rank;
        smaller ranks are its leading columns)."""
        from indexer.build import holdout
        from indexer.metrics import exact_recall

        fit, validation = holdout(train, self.cfg.val_fraction, self.cfg.seed)
        limit = min(fit.shape) - 1
        ranks = sorted({min(r, limit) for r in self.cfg.ranks if r >= 1})
        users, items = self._factor(fit, ranks[-1])
        eval_users = np.flatnonzero(np.diff(validation.indptr) > 0)
        if len(eval_users) > self.cfg.max_val_users:
            rng = np.random.default_rng(self.cfg.seed)
            eval_users = np.sort(rng.choice(eval_users, self.cfg.max_val_users, replace=False))
        scores = {r: exact_recall(users[:, :r], items[:, :r], fit, validation, eval_users) for r in ranks}
        best = max(ranks, key=lambda r: (scores[r], -r))
        self.history.append({"rank_search": {str(r): round(v, 5) for r, v in scores.items()}, "chosen": best})
        log.info("closed-form rank search %s -> %d", scores, best)
        return best
