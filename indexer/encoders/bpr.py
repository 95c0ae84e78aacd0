"""BPR training shared by MF-BPR and LightGCN: sampling, Adam, L2, early stopping."""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm import tqdm

from indexer.encoders.base import Embeddings, Encoder

log = logging.getLogger(__name__)


@dataclass
class BPRConfig:
    """Training hyper-parameters (defaults follow LightGCN's paper where they fit a CPU budget)."""

    dim: int = 64
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 1e-3
    reg: float = 1e-4
    seed: int = 0
    eval_every: int = 5
    patience: int = 3
    max_eval_users: int = 5000
    device: str = "auto"
    progress: bool = True


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BPRModule(nn.Module):
    """Layer-0 embedding tables; subclasses define the final vectors."""

    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.user0 = nn.Parameter(torch.randn(n_users, dim) * 0.1)
        self.item0 = nn.Parameter(torch.randn(n_items, dim) * 0.1)

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user0, self.item0


def sample_negatives(
    users: np.ndarray, train_keys: np.ndarray, n_items: int, rng: np.random.Generator, rounds: int = 5
) -> np.ndarray:
    """Uniform negative items, resampled (a few rounds) where they hit a training pair."""
    negatives = rng.integers(0, n_items, size=len(users))
    for _ in range(rounds):
        keys = users.astype(np.int64) * n_items + negatives
        pos = np.searchsorted(train_keys, keys).clip(max=len(train_keys) - 1)
        clash = train_keys[pos] == keys
        if not clash.any():
            break
        negatives[clash] = rng.integers(0, n_items, size=int(clash.sum()))
    return negatives


def exact_recall(
    users_vec: np.ndarray,
    items_vec: np.ndarray,
    train: sp.csr_matrix,
    truth: sp.csr_matrix,
    users: np.ndarray,
    k: int = 20,
) -> float:
    """Recall@k of the full-precision ranking for ``users`` (training items excluded)."""
    from indexer.metrics import recall_ndcg

    scores = users_vec[users] @ items_vec.T
    rows, cols = train[users].nonzero()
    scores[rows, cols] = -np.inf
    ranked = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, ranked, axis=1), axis=1)
    return recall_ndcg(np.take_along_axis(ranked, order, axis=1), truth, users, k)[f"recall@{k}"]


class BPREncoder(Encoder):
    """Base for encoders trained with the BPR loss; subclasses build the module."""

    def __init__(self, config: BPRConfig | None = None) -> None:
        self.cfg = config or BPRConfig()
        self.history: list[dict[str, float]] = []

    def build(self, train: sp.csr_matrix, device: torch.device) -> BPRModule:
        raise NotImplementedError

    def config(self) -> dict[str, object]:
        cfg = asdict(self.cfg)
        cfg.pop("progress")
        return {"encoder": self.name, **cfg}

    def fit(self, train: sp.csr_matrix, validation: sp.csr_matrix | None = None) -> Embeddings:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(os.cpu_count() or 1)
        rng = np.random.default_rng(cfg.seed)
        device = resolve_device(cfg.device)
        train = sp.csr_matrix(train, dtype=np.float32)
        _n_users, n_items = train.shape
        module = self.build(train, device).to(device)
        optimizer = torch.optim.Adam(module.parameters(), lr=cfg.lr)
        coo = train.tocoo()
        pair_users, pair_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        train_keys = np.sort(pair_users * n_items + pair_items)
        eval_users = self._eval_users(validation, rng)
        best: tuple[float, dict[str, torch.Tensor]] | None = None
        stale = 0
        for epoch in range(1, cfg.epochs + 1):
            started = time.perf_counter()
            loss = self._epoch(
                module, optimizer, pair_users, pair_items, train_keys, n_items, rng, device, epoch
            )
            record = {"epoch": epoch, "loss": loss, "seconds": round(time.perf_counter() - started, 2)}
            if eval_users is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                users_vec, items_vec = self._numpy(module)
                recall = exact_recall(users_vec, items_vec, train, validation, eval_users)
                record["val_recall@20"] = round(recall, 5)
                if best is None or recall > best[0]:
                    best, stale = (recall, copy.deepcopy(module.state_dict())), 0
                else:
                    stale += 1
            self.history.append(record)
            log.info("epoch %s", record)
            if stale >= cfg.patience:
                log.info("early stop at epoch %d", epoch)
                break
        if best is not None:
            module.load_state_dict(best[1])
        users_vec, items_vec = self._numpy(module)
        return Embeddings(users_vec, items_vec)

    def _eval_users(self, validation: sp.csr_matrix | None, rng: np.random.Generator) -> np.ndarray | None:
        if validation is None or validation.nnz == 0:
            return None
        users = np.flatnonzero(np.diff(validation.indptr) > 0)
        if len(users) > self.cfg.max_eval_users:
            users = np.sort(rng.choice(users, self.cfg.max_eval_users, replace=False))
        return users

    @staticmethod
    def _numpy(module: BPRModule) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            users, items = module.final()
            return (
                users.detach().cpu().numpy().astype(np.float32),
                items.detach().cpu().numpy().astype(np.float32),
            )

    def _epoch(self, module, optimizer, pair_users, pair_items, train_keys, n_items, rng, device, epoch):  # type: ignore[no-untyped-def]
        cfg = self.cfg
        order = rng.permutation(len(pair_users))
        users_all, pos_all = pair_users[order], pair_items[order]
        neg_all = sample_negatives(users_all, train_keys, n_items, rng)
        total, batches = 0.0, range(0, len(order), cfg.batch_size)
        bar = tqdm(batches, desc=f"{self.name} epoch {epoch}", leave=False, disable=not cfg.progress)
        for start in bar:
            sl = slice(start, start + cfg.batch_size)
            u = torch.from_numpy(users_all[sl]).to(device)
            p = torch.from_numpy(pos_all[sl]).to(device)
            n = torch.from_numpy(neg_all[sl]).to(device)
            users_vec, items_vec = module.final()
            eu, ep, en = users_vec[u], items_vec[p], items_vec[n]
            margin = (eu * ep).sum(1) - (eu * en).sum(1)
            bpr = nn.functional.softplus(-margin).mean()
            l2 = (
                module.user0[u].square().sum()
                + module.item0[p].square().sum()
                + module.item0[n].square().sum()
            ) / (2 * len(u))
            loss = bpr + cfg.reg * l2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(bpr.detach()) * len(u)
        return round(total / len(order), 5)
