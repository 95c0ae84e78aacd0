"""End-to-end tuning of the walk layout's hash layer: free item codes and query weights.

``indexer.walk`` first learns a linear projection of spectral features (``quantizers.learned``);
its codes are confined to what 1,536 features can say about a full-rank walk. This step frees
them: each item's pre-code (the sign of which is its code) and each item's share of a query's
pre-code (a query is ``sign(sum_{j in h} Q_j)``, as served) become parameters, warm-started from
the projection and trained with the straight-through sign (HashGNN) on a BPR loss that puts each
user's walk top-k (the teacher) above random items and above its current Hamming near misses
(ranks ``hard_ranks`` of the codes, refreshed each epoch, teacher items left out). torch on CPU,
CUDA when asked and present; the draws are made on the CPU so both see the same samples.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeTuning:
    """epochs: 0 keeps the projection's codes; hard_ranks: the Hamming ranks near misses are
    drawn from; hard_share: the fraction of negatives drawn from them (the rest uniform)."""

    epochs: int = 20
    lr: float = 5e-3
    negatives: int = 2
    hard_ranks: tuple[int, int] = (100, 600)
    hard_share: float = 0.5
    batch_size: int = 512
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.negatives < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"code tuning needs epochs >= 0, negatives, batch_size >= 1, lr > 0: {self}")
        if not 0 <= self.hard_ranks[0] < self.hard_ranks[1] or not 0.0 <= self.hard_share <= 1.0:
            raise ValueError(f"hard_ranks must be 0 <= lo < hi and hard_share in [0, 1]: {self}")


def near_misses(query_pre: np.ndarray, item_pre: np.ndarray, ranks: tuple[int, int]) -> np.ndarray:
    """Each query's items at Hamming ranks [lo, hi) of the current codes: (n_queries, width) int64.

    Searched on one thread: faiss's multi-threaded scan may order equal distances differently from
    run to run, and these draws must repeat for a seed."""
    import faiss

    bits = item_pre.shape[1]
    hi = min(ranks[1], item_pre.shape[0])
    lo = min(ranks[0], max(hi - 1, 0))
    index = faiss.IndexBinaryFlat(bits)
    index.add(np.packbits(item_pre > 0, axis=1))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        _, found = index.search(np.packbits(query_pre > 0, axis=1), hi)
    finally:
        faiss.omp_set_num_threads(threads)
    return np.ascontiguousarray(found[:, lo:hi], dtype=np.int64)


def tune_codes(
    train: sp.csr_matrix,
    query_weights: np.ndarray,
    item_pre: np.ndarray,
    teacher: np.ndarray,
    cfg: CodeTuning,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Tuned (query weights, item pre-codes), float32 (n_items, bits) each.

    Parameters
    ----------
    train : csr_matrix (n_users, n_items)
        Each user's history: its query pre-code is ``train[u] @ query_weights``.
    query_weights, item_pre : ndarray of float32 (n_items, bits)
        The starting point (the projection's).
    teacher : ndarray of int64 (n_users, k)
        Each user's items to retrieve, best first.
    """
    import torch
    import torch.nn.functional as F
    from hashrec.indexer.encoders.bpr import resolve_device

    n_users, n_items = train.shape
    if cfg.epochs == 0 or teacher.size == 0 or n_items < 2:
        return query_weights, item_pre
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    history = sp.csr_matrix(train, dtype=np.float32)
    history.sort_indices()
    # Pre-activations O(1) on both sides: the relaxation's slope then means the same everywhere.
    query_scale = max(float(np.abs(history @ query_weights).mean()), 1e-12)
    item_scale = max(float(np.abs(item_pre).mean()), 1e-12)
    weights = torch.nn.Parameter(torch.from_numpy(query_weights / query_scale).float().to(device))
    items = torch.nn.Parameter(torch.from_numpy(item_pre / item_scale).float().to(device))
    optimizer = torch.optim.Adam([weights, items], lr=cfg.lr)
    positives = torch.from_numpy(np.ascontiguousarray(teacher, dtype=np.int64))
    k = teacher.shape[1]
    n_neg = k * cfg.negatives
    bits = item_pre.shape[1]
    for epoch in tqdm(range(cfg.epochs), desc="walk codes", disable=not progress, leave=False):
        slope = 1.0 + 4.0 * epoch / max(1, cfg.epochs - 1)
        straight = epoch >= cfg.epochs - 2
        pool = torch.from_numpy(
            near_misses(
                history @ weights.detach().cpu().numpy(), items.detach().cpu().numpy(), cfg.hard_ranks
            )
        )
        total = 0.0
        order = rng.permutation(n_users)
        for start in range(0, n_users, cfg.batch_size):
            rows = order[start : start + cfg.batch_size]
            negative = _negatives(rng, pool[rows], positives[rows], n_items, n_neg, cfg.hard_share)
            block = history[rows]
            summed = F.embedding_bag(
                torch.from_numpy(block.indices.astype(np.int64)).to(device),
                weights,
                torch.from_numpy(block.indptr[:-1].astype(np.int64)).to(device),
                mode="sum",
            )
            query = _relaxed(summed, slope, straight)
            pos = _relaxed(items[positives[rows].to(device)], slope, straight)
            neg = _relaxed(items[negative.to(device)], slope, straight)
            pos_score = (query[:, None, :] * pos).sum(-1) / bits
            neg_score = (query[:, None, :] * neg).sum(-1) / bits
            loss = F.softplus(-8.0 * (pos_score.repeat(1, cfg.negatives) - neg_score)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        log.debug("walk codes epoch %d: loss %.5f", epoch + 1, total / n_users)
    log.info("tuned the walk's codes for %d epochs in %.1fs", cfg.epochs, time.perf_counter() - started)
    return (
        np.ascontiguousarray(weights.detach().cpu().numpy(), dtype=np.float32),
        np.ascontiguousarray(items.detach().cpu().numpy(), dtype=np.float32),
    )


def _relaxed(x, slope: float, straight: bool):  # type: ignore[no-untyped-def]
    """tanh(slope * x); with ``straight`` the sign forward and tanh's gradient backward."""
    import torch

    soft = torch.tanh(slope * x)
    return (torch.sign(x) - soft).detach() + soft if straight else soft


def _negatives(rng: np.random.Generator, pool, positives, n_items: int, count: int, share: float):  # type: ignore[no-untyped-def]
    """(B, count) negatives: near misses with probability ``share``, else uniform; a draw that
    is one of the row's positives is replaced by a uniform one."""
    import torch

    rows = len(positives)
    uniform = torch.from_numpy(rng.integers(0, n_items, (rows, count)))
    if share > 0 and pool.shape[1] > 0:
        picks = torch.from_numpy(rng.integers(0, pool.shape[1], (rows, count)))
        hard = torch.gather(pool, 1, picks)
        use_hard = torch.from_numpy(rng.random((rows, count)) < share)
        drawn = torch.where(use_hard, hard, uniform)
        clash = (drawn[:, :, None] == positives[:, None, :]).any(-1)
        drawn = torch.where(clash, uniform, drawn)
        return drawn
    return uniform
