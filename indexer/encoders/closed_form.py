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
    """dim: rank k of the SVD (the vector length); beta: the degree exponent on items."""

    dim: int = 256
    beta: float = 0.5
    seed: int = 0


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
        self.history: list[dict[str, float]] = []

    def config(self) -> dict[str, object]:
        return {"encoder": self.name, **asdict(self.cfg)}

    def fit(self, train: sp.csr_matrix, validation: sp.csr_matrix | None = None) -> Embeddings:
        """Closed form: ``validation`` is not needed and is ignored."""
        started = time.perf_counter()
        normalized, item_degree = normalized_interactions(train)
        k = min(self.cfg.dim, min(normalized.shape) - 1)
        _, singular, vt = svds(normalized, k=k, random_state=self.cfg.seed)
        basis = vt[np.argsort(-singular)].T.astype(np.float32)  # (n_items, k), strongest first
        degree = np.maximum(item_degree, 1.0).astype(np.float32)
        items = basis * (degree**self.cfg.beta)[:, None]
        users = sp.csr_matrix(train, dtype=np.float32) @ (basis * (degree**-self.cfg.beta)[:, None])
        self.history.append({"seconds": round(time.perf_counter() - started, 2), "rank": k})
        log.info("closed-form encoder: rank %d in %.1fs", k, time.perf_counter() - started)
        return Embeddings(np.ascontiguousarray(users, dtype=np.float32), np.ascontiguousarray(items))
