"""The Quantizer role: turn user and item vectors into packed binary codes the service can match.

Every quantizer passes the shared contract in ``tests/indexer/test_quantizers.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
from hashrec.retrieval.query_codes import Transform


class Quantizer(ABC):
    """Codes users and items; after :meth:`encode` the service's rule
    ``hashrec.retrieval.query_codes.query_codes(users, projection, transform)`` gives the user codes
    again, so a new query vector is coded exactly as the indexer coded its users.

    Attributes
    ----------
    bits : int
        Code length, a positive multiple of 8.
    transform : {"rotation", "mips"}
        The query-side transform before the projection (recorded in the manifest, read by the service).
    projection : numpy.ndarray
        float32 (dim [+ 1 for mips], bits), set by :meth:`encode`.
    """

    bits: int
    transform: Transform
    projection: np.ndarray

    @abstractmethod
    def encode(
        self, users: np.ndarray, items: np.ndarray, seen: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user_codes, item_codes) as uint8 of bits / 8 bytes per row; ``seen`` is the training
        matrix (users x items) for quantizers that learn from it."""

    @abstractmethod
    def config(self) -> dict[str, object]:
        """Recorded in the manifest as ``config.quantizer``: at least ``quantizer`` (the registry
        name), ``bits``, ``transform`` and ``seed``, JSON-serializable."""


def check_bits(bits: int) -> None:
    """Refuse a code length that is not a positive multiple of 8 (ValueError)."""
    if bits % 8 or bits <= 0:
        raise ValueError(f"bits must be a positive multiple of 8, got {bits}")


def random_projection(dim: int, bits: int, seed: int) -> np.ndarray:
    """A (dim, bits) projection: orthonormal columns where bits <= dim, Gaussian otherwise."""
    rng = np.random.default_rng(seed)
    gaussian = rng.standard_normal((dim, bits))
    if bits <= dim:
        q, _ = np.linalg.qr(gaussian)
        return q.astype(np.float32)
    return gaussian.astype(np.float32)
