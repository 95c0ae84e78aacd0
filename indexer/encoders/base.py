"""The Encoder role: learn user and item vectors scored by inner product."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Embeddings:
    """float32 user (n_users, dim) and item (n_items, dim) vectors; score = <user, item>."""

    users: np.ndarray
    items: np.ndarray


class Encoder(ABC):
    """Learns :class:`Embeddings` from a binary user x item training matrix.

    Every encoder passes the shared tests in ``tests/indexer/test_encoders.py``.
    """

    name: str = "encoder"

    @abstractmethod
    def fit(self, train: sp.csr_matrix, validation: sp.csr_matrix | None = None) -> Embeddings:
        """Train on ``train``; ``validation`` (disjoint from train) drives early stopping."""

    @abstractmethod
    def config(self) -> dict[str, object]:
        """Hyper-parameters, recorded in the artifact manifest."""
