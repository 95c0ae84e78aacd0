"""MF-BPR and LightGCN (He et al. 2020)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from hashrec.indexer.encoders.bpr import BPRConfig, BPREncoder, BPRModule


class MFBPR(BPREncoder):
    """Matrix factorization trained with BPR: the simple baseline."""

    name = "mf"

    def build(self, train: sp.csr_matrix, device: torch.device) -> BPRModule:
        n_users, n_items = train.shape
        return BPRModule(n_users, n_items, self.cfg.dim, **self.table_kwargs())  # type: ignore[arg-type]


def normalized_adjacency(train: sp.csr_matrix) -> sp.csr_matrix:
    """D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [R^T, 0]], kept sparse."""
    _n_users, _n_items = train.shape
    r = sp.csr_matrix(train, dtype=np.float32)
    adjacency = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    scale = sp.diags(inv_sqrt)
    return (scale @ adjacency @ scale).tocsr().astype(np.float32)


def to_torch_sparse(matrix: sp.csr_matrix) -> torch.Tensor:
    """scipy CSR -> torch sparse CSR (no densification)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,
        )


class _SymmetricSpMM(torch.autograd.Function):
    """A @ X for a symmetric sparse A; the backward reuses A instead of transposing it.

    torch's generic backward transposes the CSR matrix on every step, which doubled the
    cost of a LightGCN step on CPU.
    """

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, torch.sparse.mm(ctx.adjacency, grad)


class LightGCNModule(BPRModule):
    """Final vectors = mean of layers 0..L of normalized propagation, no transforms."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        layers: int,
        adjacency: torch.Tensor,
        **tables: object,
    ) -> None:
        super().__init__(n_users, n_items, dim, **tables)  # type: ignore[arg-type]
        self.layers = layers
        self.register_buffer("adjacency", adjacency, persistent=False)

    def batch(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        users_vec, items_vec = self.final()
        return users_vec[users], items_vec[pos], items_vec[neg]

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        layer = torch.cat(self.layer0())
        total = layer
        for _ in range(self.layers):
            layer = _SymmetricSpMM.apply(self.adjacency, layer)
            total = total + layer
        mean = total / (self.layers + 1)
        return mean[: self.n_users], mean[self.n_users :]


@dataclass
class LightGCNConfig(BPRConfig):
    layers: int = 3


class LightGCN(BPREncoder):
    """LightGCN with BPR loss."""

    name = "lightgcn"
    cfg: LightGCNConfig

    def __init__(self, config: LightGCNConfig | None = None) -> None:
        super().__init__(config or LightGCNConfig())

    def build(self, train: sp.csr_matrix, device: torch.device) -> BPRModule:
        n_users, n_items = train.shape
        adjacency = to_torch_sparse(normalized_adjacency(train)).to(device)
        return LightGCNModule(
            n_users, n_items, self.cfg.dim, self.cfg.layers, adjacency, **self.table_kwargs()
        )


ENCODERS = {"mf": MFBPR, "lightgcn": LightGCN}


def make_encoder(name: str, **params: object) -> BPREncoder:
    """Build an encoder by name with config overrides; unknown names raise ValueError."""
    if name == "mf":
        return MFBPR(BPRConfig(**params))  # type: ignore[arg-type]
    if name == "lightgcn":
        return LightGCN(LightGCNConfig(**params))  # type: ignore[arg-type]
    raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
