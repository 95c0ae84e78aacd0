"""Learned projection codes: distil the full-precision ranking into the Hamming ranking.

Sign codes from a random projection rank items by angle; what serving needs is that each user's
Hamming top-C holds the model's own top-k. This quantizer keeps the serving rule of
:class:`indexer.codes.SignQuantizer` (MIPS augmentation, then ``sign(x @ W)``, so the service
encodes new queries unchanged) but learns ``W`` instead of drawing it: a BPR loss on relaxed codes
``tanh(beta * x @ W)`` pushes each user's teacher top-k items (the encoder's own exact ranking,
training items excluded) above random items, with beta raised over training so the relaxation
approaches the sign (as HashNet and CIGAR do), and a straight-through sign in the last epochs
(HashGNN). The random projection is the starting point, so training can only refine it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from indexer.codes import mips_augment, pack_signs, random_projection

log = logging.getLogger(__name__)


def teacher_top_k(
    users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix, k: int, batch_size: int = 2048
) -> np.ndarray:
    """Each user's exact inner-product top-k item rows, training items excluded: (n_users, k)."""
    out = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        scores = users[start : start + batch_size] @ items.T
        rows, cols = seen[start : start + batch_size].nonzero()
        scores[rows, cols] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        out[start : start + batch_size] = top
    return out


@dataclass
class LearnedQuantizer:
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
        Final epochs that use the sign with a straight-through gradient instead of tanh.
    """

    bits: int
    seed: int = 0
    epochs: int = 8
    teacher_k: int = 20
    lr: float = 5e-3
    batch_size: int = 8192
    ste_epochs: int = 2
    transform: str = field(default="mips", init=False)
    projection: np.ndarray = field(init=False, repr=False)
    history: list[dict[str, float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bits % 8 or self.bits <= 0:
            raise ValueError(f"bits must be a positive multiple of 8, got {self.bits}")

    def encode(
        self, users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Learn the projection, then return (user_codes, item_codes) as packed uint8."""
        aug_users, aug_items = mips_augment(users, items)
        seen = seen if seen is not None else sp.csr_matrix((len(users), len(items)), dtype=np.float32)
        started = time.perf_counter()
        positives = teacher_top_k(users.astype(np.float32), items.astype(np.float32), seen, self.teacher_k)
        self.projection = self._train(aug_users, aug_items, positives)
        log.info("learned %d-bit projection in %.1fs", self.bits, time.perf_counter() - started)
        return pack_signs(aug_users @ self.projection), pack_signs(aug_items @ self.projection)

    def _train(self, users: np.ndarray, items: np.ndarray, positives: np.ndarray) -> np.ndarray:
        import torch

        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        start = random_projection(users.shape[1], self.bits, self.seed)
        # Scale so the initial pre-activations are O(1) whatever the input norms.
        scale = float(np.sqrt(users.shape[1]))
        weight = torch.nn.Parameter(torch.from_numpy(start * scale))
        optimizer = torch.optim.Adam([weight], lr=self.lr)
        user_t, item_t = torch.from_numpy(users), torch.from_numpy(items)
        pair_users = np.repeat(np.arange(len(users)), positives.shape[1])
        pair_items = positives.ravel()
        for epoch in range(self.epochs):
            beta = 1.0 + 2.0 * epoch  # sharper relaxation each epoch
            straight_through = epoch >= self.epochs - self.ste_epochs
            order = rng.permutation(len(pair_users))
            negatives = rng.integers(0, len(items), len(order))
            total = 0.0
            for begin in range(0, len(order), self.batch_size):
                batch = order[begin : begin + self.batch_size]
                u = self._relax(user_t[pair_users[batch]] @ weight, beta, straight_through)
                p = self._relax(item_t[pair_items[batch]] @ weight, beta, straight_through)
                n = self._relax(
                    item_t[negatives[begin : begin + len(batch)]] @ weight, beta, straight_through
                )
                margin = ((u * p).sum(1) - (u * n).sum(1)) / self.bits
                loss = torch.nn.functional.softplus(-8.0 * margin).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            self.history.append({"epoch": epoch + 1, "loss": round(total / len(order), 5), "beta": beta})
        return weight.detach().numpy().astype(np.float32)

    @staticmethod
    def _relax(x, beta: float, straight_through: bool):  # type: ignore[no-untyped-def]
        """tanh(beta x), or sign(x) with tanh's gradient passed straight through."""
        import torch

        soft = torch.tanh(beta * x)
        if not straight_through:
            return soft
        return soft + (torch.sign(x) - soft).detach()

    def config(self) -> dict[str, object]:
        return {
            "quantizer": "learned",
            "bits": self.bits,
            "transform": self.transform,
            "seed": self.seed,
            "epochs": self.epochs,
            "teacher_k": self.teacher_k,
            "lr": self.lr,
            "history": self.history,
        }
