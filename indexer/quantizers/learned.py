"""Learned projection codes: distil the full-precision ranking into the Hamming ranking.

Sign codes from a random projection rank items by angle; what serving needs is that each user's
Hamming top-C holds the model's own top-k. This quantizer keeps the serving rule of
:class:`indexer.quantizers.posthoc.SignQuantizer` (MIPS augmentation, then ``sign(x @ W)``, so the service
encodes new queries unchanged) but learns ``W`` instead of drawing it: a BPR loss on relaxed codes
``tanh(beta * x @ W)`` pushes each user's teacher top-k items (the encoder's own exact ranking,
training items excluded) above random items, with beta raised over training so the relaxation
approaches the sign (as HashNet and CIGAR do), and a straight-through sign in the last epochs
(HashGNN). The random projection is the starting point, so training can only refine it.

The same trainer runs the published estimators (``estimator``, see :mod:`indexer.quantizers.estimators`):
HashGNN's stochastic guidance with a BCE term and its own positives (the training interactions,
``positives="train"``), and HQ-GNN's Hessian-aware generalized straight-through estimator. The
hash layer has no bias: the service encodes queries as ``sign(augment(x) @ W)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from hashrec.indexer.quantizers.base import Quantizer, check_bits, random_projection
from hashrec.retrieval.query_codes import Transform, mips_augment, pack_signs
from hashrec.retrieval.topk import top_k

ESTIMATORS = ("anneal", "hashgnn", "gste")
POSITIVES = ("teacher", "train", "both")

log = logging.getLogger(__name__)


def teacher_top_k(
    users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, k: int, batch_size: int = 2048
) -> np.ndarray:
    """Each user's exact inner-product top-k item rows, training items excluded: (n_users, k).

    A catalogue of k items or fewer gives each user its n_items - 1 best (so at least one item is
    left out, as a top-k of a larger catalogue leaves items out).
    """
    k = min(k, items.shape[0] - 1)
    out = np.empty((len(users), max(k, 0)), dtype=np.int64)
    if k < 1:
        return out
    for start in range(0, len(users), batch_size):
        scores = users[start : start + batch_size] @ items.T
        rows, cols = seen[start : start + batch_size].nonzero()
        scores[rows, cols] = -np.inf
        out[start : start + batch_size] = top_k(scores, k)[0]
    return out


@dataclass
class LearnedQuantizer(Quantizer):
    """Sign codes with a projection trained to keep the teacher's top-k in the Hamming top-C.

    Parameters
    ----------
    bits : int
    seed : int
    epochs : int
    teacher_k : int
        Positives per user: the encoder's own top-k (excluding training items).
    lr : float
    batch_size : int
    ste_epochs : int
        ``anneal`` only: final epochs that use the sign with a straight-through gradient.
    estimator : {"anneal", "hashgnn", "gste"}
        How codes are relaxed in training (:mod:`indexer.quantizers.estimators`).
    positives : {"teacher", "train", "both"}
        The encoder's own top-``teacher_k`` (distillation), the training interactions, or both.
    negatives : int
        Sampled negatives per positive.
    bce_weight : float
        Weight of a BCE term on the relaxed scores (HashGNN uses 0.1).
    name : str
        Recorded as ``quantizer`` in the manifest.
    device : str
        ``cpu``, ``cuda`` or ``auto`` (CUDA when available) for the projection's training.
    """

    bits: int
    seed: int = 0
    epochs: int = 8
    teacher_k: int = 20
    lr: float = 5e-3
    batch_size: int = 8192
    ste_epochs: int = 2
    estimator: str = "anneal"
    positives: str = "teacher"
    negatives: int = 1
    bce_weight: float = 0.0
    name: str = "learned"
    device: str = "cpu"
    transform: Transform = field(default="mips", init=False)
    projection: np.ndarray = field(init=False, repr=False)
    history: list[dict[str, float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        check_bits(self.bits)
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.positives not in POSITIVES:
            raise ValueError(f"positives must be one of {POSITIVES}, got {self.positives!r}")

    def encode(
        self,
        users: np.ndarray,
        items: np.ndarray,
        seen: sp.csr_matrix | None = None,
        teacher: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn the projection, then return (user_codes, item_codes) as packed uint8.

        ``teacher`` (n_users, k) item rows replaces the inner-product top-k of ``users`` and
        ``items`` as the positives (a scorer that is not an inner product, ``indexer.walk``)."""
        aug_users, aug_items = mips_augment(users, items)
        seen = seen if seen is not None else sp.csr_matrix((len(users), len(items)), dtype=np.float32)
        started = time.perf_counter()
        pairs: list[tuple[np.ndarray, np.ndarray]] = []
        if self.positives in ("teacher", "both"):
            top = (
                teacher
                if teacher is not None
                else teacher_top_k(users.astype(np.float32), items.astype(np.float32), seen, self.teacher_k)
            )
            pairs.append((np.repeat(np.arange(len(users)), top.shape[1]), top.ravel()))
        if self.positives in ("train", "both"):
            rows, cols = sp.csr_matrix(seen).nonzero()
            pairs.append((rows.astype(np.int64), cols.astype(np.int64)))
        pair_users = np.concatenate([u for u, _ in pairs])
        pair_items = np.concatenate([i for _, i in pairs])
        if len(pair_users):
            self.projection = self._train(aug_users, aug_items, pair_users, pair_items)
        else:  # a one-item catalogue without training pairs: nothing to learn, keep the start
            log.warning("no positive pairs to learn codes from: the random projection is kept")
            self.projection = random_projection(aug_users.shape[1], self.bits, self.seed)
        log.info("learned %d-bit projection in %.1fs", self.bits, time.perf_counter() - started)
        return pack_signs(aug_users @ self.projection), pack_signs(aug_items @ self.projection)

    def _train(
        self, users: np.ndarray, items: np.ndarray, pair_users: np.ndarray, pair_items: np.ndarray
    ) -> np.ndarray:
        import torch
        from hashrec.indexer.encoders.bpr import resolve_device
        from hashrec.indexer.quantizers.estimators import hutchinson_delta

        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)  # CPU draws: CUDA runs match CPU runs
        rng = np.random.default_rng(self.seed)
        start = random_projection(users.shape[1], self.bits, self.seed)
        # Scale so the initial pre-activations are O(1) whatever the input norms.
        scale = float(np.sqrt(users.shape[1]))
        weight = torch.nn.Parameter(torch.from_numpy(start * scale).to(device))
        optimizer = torch.optim.Adam([weight], lr=self.lr)
        user_t, item_t = torch.from_numpy(users).to(device), torch.from_numpy(items).to(device)
        delta = 0.0
        for epoch in range(self.epochs):
            order = rng.permutation(len(pair_users))
            negatives = rng.integers(0, len(items), (len(order), self.negatives))
            if self.estimator == "gste":  # HQ-GNN refreshes delta every epoch here
                batch = order[: self.batch_size]
                rows = self._rows(user_t, item_t, pair_users, pair_items, negatives[: len(batch)], batch)
                codes = [torch.sign(t @ weight.detach()) for t in rows]
                delta = hutchinson_delta(self._loss, codes, generator=generator)
            total = 0.0
            for begin in range(0, len(order), self.batch_size):
                batch = order[begin : begin + self.batch_size]
                rows = self._rows(
                    user_t, item_t, pair_users, pair_items, negatives[begin : begin + len(batch)], batch
                )
                u, p, n = (self._code(t @ weight, epoch, delta, generator) for t in rows)
                loss = self._loss(u, p, n)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            record = {"epoch": epoch + 1, "loss": round(total / len(order), 5)}
            if self.estimator == "gste":
                record["delta"] = round(delta, 6)
            self.history.append(record)
        return weight.detach().cpu().numpy().astype(np.float32)

    @staticmethod
    def _rows(user_t, item_t, pair_users, pair_items, negatives, batch):  # type: ignore[no-untyped-def]
        """Input vectors of a batch: users (B, d), positives (B, d), negatives (B, m, d)."""
        return user_t[pair_users[batch]], item_t[pair_items[batch]], item_t[negatives]

    def _code(self, x, epoch: int, delta: float, generator):  # type: ignore[no-untyped-def]
        """The estimator's relaxed codes of pre-activations ``x`` in this epoch."""
        from hashrec.indexer.quantizers.estimators import annealed_sign, gste, hashgnn_guided

        if self.estimator == "hashgnn":
            flat = x.reshape(-1, x.shape[-1])
            return hashgnn_guided(flat, (epoch + 1) / self.epochs, generator).reshape(x.shape)
        if self.estimator == "gste":
            return gste(x, delta)
        return annealed_sign(x, 1.0 + 2.0 * epoch, epoch >= self.epochs - self.ste_epochs)

    def _loss(self, u, p, n):  # type: ignore[no-untyped-def]
        """BPR on code inner products (scaled by bits), plus the optional BCE term."""
        import torch
        import torch.nn.functional as F

        pos = (u * p).sum(-1) / self.bits
        neg = (u[:, None, :] * n).sum(-1) / self.bits
        loss = F.softplus(-8.0 * (pos[:, None] - neg)).mean()
        if self.bce_weight:
            logits = 8.0 * torch.cat([pos[:, None], neg], dim=-1)
            labels = torch.cat([pos.new_ones(pos.shape[0], 1), neg.new_zeros(neg.shape)], dim=-1)
            loss = loss + self.bce_weight * F.binary_cross_entropy_with_logits(logits, labels)
        return loss

    def config(self) -> dict[str, object]:
        return {
            "quantizer": self.name,
            "estimator": self.estimator,
            "positives": self.positives,
            "negatives": self.negatives,
            "bce_weight": self.bce_weight,
            "bits": self.bits,
            "transform": self.transform,
            "seed": self.seed,
            "epochs": self.epochs,
            "teacher_k": self.teacher_k,
            "lr": self.lr,
            "history": self.history,
        }
