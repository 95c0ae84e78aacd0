"""BPR training shared by MF-BPR and LightGCN: sampling, Adam, L2, early stopping."""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from hashrec.indexer.encoders.base import Embeddings, Encoder
from hashrec.indexer.ranking_metrics import exact_recall
from torch import nn
from tqdm import tqdm

if TYPE_CHECKING:
    from hashrec.indexer.compression import Compression

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
    compression: str = "full"  # an indexer.compression method: ids share rows of smaller tables
    budget: float = 1.0  # rows of the tables: a fraction of n_users + n_items if <= 1, else a count


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class BPRModule(nn.Module):
    """Layer-0 embedding tables; subclasses define the final vectors.

    Without row mappings every id owns a row of ``user0`` / ``item0``. With them (int64
    ``(n_ids, k)`` arrays, -1 = unused slot) the tables have ``user_table_rows`` /
    ``item_table_rows`` rows (default: the largest row + 1) and an id's layer-0 vector is the sum
    of its rows, so ids share parameters (see ``indexer.compression``).
    """

    user_rows: torch.Tensor | None
    user_mask: torch.Tensor | None
    item_rows: torch.Tensor | None
    item_mask: torch.Tensor | None

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        user_rows: np.ndarray | None = None,
        item_rows: np.ndarray | None = None,
        user_table_rows: int | None = None,
        item_table_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        n_user_rows = self._register_rows("user", user_rows, n_users, user_table_rows)
        n_item_rows = self._register_rows("item", item_rows, n_items, item_table_rows)
        self.user0 = nn.Parameter(torch.randn(n_user_rows, dim) * 0.1)
        self.item0 = nn.Parameter(torch.randn(n_item_rows, dim) * 0.1)

    def _register_rows(self, side: str, rows: np.ndarray | None, n_ids: int, table_rows: int | None) -> int:
        if rows is None:
            self.register_buffer(f"{side}_rows", None, persistent=False)
            self.register_buffer(f"{side}_mask", None, persistent=False)
            return n_ids
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[:, None] if rows.ndim == 1 else rows
        if rows.shape[0] != n_ids:
            raise ValueError(f"{side} rows map {rows.shape[0]} ids, expected {n_ids}")
        n_rows = int(table_rows if table_rows is not None else rows.max() + 1)
        if rows.max() >= n_rows or (rows.max(axis=1) < 0).any():
            raise ValueError(f"{side} rows must lie in [-1, {n_rows}) with one row per id at least")
        unused = rows < 0
        mask = torch.from_numpy((~unused).astype(np.float32)) if unused.any() else None
        self.register_buffer(f"{side}_rows", torch.from_numpy(np.where(unused, 0, rows)), persistent=False)
        self.register_buffer(f"{side}_mask", mask, persistent=False)
        return n_rows

    @staticmethod
    def _compose(
        table: torch.Tensor, rows: torch.Tensor | None, mask: torch.Tensor | None, ids: torch.Tensor | None
    ) -> torch.Tensor:
        if rows is None:
            return table if ids is None else table[ids]
        if ids is not None:
            rows = rows[ids]
            mask = None if mask is None else mask[ids]
        if rows.shape[1] == 1:
            out = nn.functional.embedding(rows[:, 0], table)
            return out if mask is None else out * mask
        gathered = nn.functional.embedding(rows, table)
        if mask is not None:
            gathered = gathered * mask.unsqueeze(-1)
        return gathered.sum(1)

    def user_layer0(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Layer-0 vectors of ``ids`` (default: every user)."""
        return self._compose(self.user0, self.user_rows, self.user_mask, ids)

    def item_layer0(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        return self._compose(self.item0, self.item_rows, self.item_mask, ids)

    def layer0(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_layer0(), self.item_layer0()

    def final(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer0()

    def batch(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Final vectors of a batch; here final = layer 0, so only the batch's rows are gathered."""
        return self.user_layer0(users), self.item_layer0(pos), self.item_layer0(neg)

    def l2(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Sum of squares of the layer-0 table rows a batch uses (each id's own rows)."""
        return (
            self._row_squares(self.user0, self.user_rows, self.user_mask, users)
            + self._row_squares(self.item0, self.item_rows, self.item_mask, pos)
            + self._row_squares(self.item0, self.item_rows, self.item_mask, neg)
        )

    @staticmethod
    def _row_squares(
        table: torch.Tensor, rows: torch.Tensor | None, mask: torch.Tensor | None, ids: torch.Tensor
    ) -> torch.Tensor:
        if rows is None:
            return table[ids].square().sum()
        squares = nn.functional.embedding(rows[ids], table).square().sum(-1)
        return (squares if mask is None else squares * mask[ids]).sum()

    def table_parameters(self) -> int:
        return self.user0.numel() + self.item0.numel()


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


class BPREncoder(Encoder):
    """Base for encoders trained with the BPR loss; subclasses build the module."""

    def __init__(self, config: BPRConfig | None = None) -> None:
        self.cfg = config or BPRConfig()
        self.history: list[dict[str, float]] = []
        self.compression: Compression | None = None  # set by fit when compression/budget ask for it
        self.table: dict[str, Any] = {}  # method, budget, rows and parameters of the tables

    def _fit_compression(self, train: sp.csr_matrix) -> None:
        """Map ids to shared rows when ``compression``/``budget`` ask for a smaller table."""
        cfg = self.cfg
        n_users, n_items = train.shape
        if cfg.compression == "full" and cfg.budget == 1.0:
            self.compression = None
            rows = n_users + n_items
            self.table = {
                "method": "full",
                "budget": 1.0,
                "user_rows": n_users,
                "item_rows": n_items,
                "rows": rows,
                "full_rows": rows,
                "fraction": 1.0,
                "parameters": rows * cfg.dim,
                "full_parameters": rows * cfg.dim,
            }
            return
        from hashrec.indexer.compression import compress

        self.compression = compress(train, cfg.compression, cfg.budget, seed=cfg.seed)
        self.table = self.compression.summary(cfg.dim)
        log.info("compressed tables: %s", self.table)

    def table_kwargs(self) -> dict[str, object]:
        """BPRModule arguments for the fitted compression (none for the full table)."""
        c = self.compression
        if c is None:
            return {}
        return {
            "user_rows": c.users.rows,
            "item_rows": c.items.rows,
            "user_table_rows": c.users.n_rows,
            "item_table_rows": c.items.n_rows,
        }

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
        self._fit_compression(train)
        module = self.build(train, device).to(device)
        self.table["parameters"] = module.table_parameters()
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
            eu, ep, en = module.batch(u, p, n)
            margin = (eu * ep).sum(1) - (eu * en).sum(1)
            bpr = nn.functional.softplus(-margin).mean()
            l2 = module.l2(u, p, n) / (2 * len(u))
            loss = bpr + cfg.reg * l2
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(bpr.detach()) * len(u)
        return round(total / len(order), 5)
