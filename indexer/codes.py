"""Post-hoc binary codes: sign of (optionally transformed, projected) embeddings, packed to uint8."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from hashrec.retrieval.query_codes import TRANSFORMS, mips_augment, pack_signs


class Quantizer(Protocol):
    """Turns user and item vectors into packed binary codes.

    After :meth:`encode`, ``projection`` and ``transform`` let the service encode a new query
    vector the same way: ``sign(augment(x) @ projection)``.
    """

    bits: int
    transform: str
    projection: np.ndarray

    def encode(
        self, users: np.ndarray, items: np.ndarray, seen: object = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user_codes, item_codes) as uint8 of bits / 8 bytes per row."""
        ...

    def config(self) -> dict[str, object]:
        """Recorded in the manifest."""
        ...


def random_projection(dim: int, bits: int, seed: int) -> np.ndarray:
    """A (dim, bits) projection: orthonormal columns where bits <= dim, Gaussian otherwise."""
    rng = np.random.default_rng(seed)
    gaussian = rng.standard_normal((dim, bits))
    if bits <= dim:
        q, _ = np.linalg.qr(gaussian)
        return q.astype(np.float32)
    return gaussian.astype(np.float32)


@dataclass
class SignQuantizer:
    """Sign codes after a seeded random rotation or projection.

    Parameters
    ----------
    bits : int
        Code length, a multiple of 8.
    transform : {"rotation", "mips"}
        ``mips`` appends the norm coordinate first (see :func:`mips_augment`).
    seed : int
    """

    bits: int
    transform: str = "mips"
    seed: int = 0
    projection: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bits % 8 or self.bits <= 0:
            raise ValueError(f"bits must be a positive multiple of 8, got {self.bits}")
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")

    def encode(
        self, users: np.ndarray, items: np.ndarray, seen: object = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (user_codes, item_codes), uint8 of bits / 8 bytes per row (``seen`` is unused)."""
        if self.transform == "mips":
            users, items = mips_augment(users, items)
        self.projection = random_projection(users.shape[1], self.bits, self.seed)
        return pack_signs(users @ self.projection), pack_signs(items @ self.projection)

    def config(self) -> dict[str, object]:
        return {"quantizer": "sign", "bits": self.bits, "transform": self.transform, "seed": self.seed}


@dataclass
class ITQQuantizer:
    """Iterative quantization (Gong et al. 2013) of the MIPS-augmented item vectors.

    The projection is the top ``bits`` right singular vectors of the items (uncentered, since the
    service's rule ``sign(x @ W)`` has no offset), followed by the rotation that ITQ alternates
    with the codes (``B = sign(V R)``, then the orthogonal Procrustes update of ``R``). With more
    bits than dimensions, a seeded Gaussian projection replaces the singular vectors.

    Parameters
    ----------
    bits : int
    iterations : int
    seed : int
    """

    bits: int
    iterations: int = 50
    seed: int = 0
    transform: str = field(default="mips", init=False)
    projection: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bits % 8 or self.bits <= 0:
            raise ValueError(f"bits must be a positive multiple of 8, got {self.bits}")

    def encode(
        self, users: np.ndarray, items: np.ndarray, seen: object = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (user_codes, item_codes), uint8 of bits / 8 bytes per row (``seen`` is unused)."""
        users, items = mips_augment(users, items)
        if self.bits <= items.shape[1]:
            _, _, vt = np.linalg.svd(items.astype(np.float64), full_matrices=False)
            base = vt[: self.bits].T
        else:
            base = random_projection(items.shape[1], self.bits, self.seed).astype(np.float64)
        projected = items @ base
        rotation = random_projection(self.bits, self.bits, self.seed).astype(np.float64)
        for _ in range(self.iterations):
            codes = np.where(projected @ rotation >= 0, 1.0, -1.0)
            u, _, wt = np.linalg.svd(projected.T @ codes)
            rotation = u @ wt
        self.projection = (base @ rotation).astype(np.float32)
        return pack_signs(users @ self.projection), pack_signs(items @ self.projection)

    def config(self) -> dict[str, object]:
        return {"quantizer": "itq", "bits": self.bits, "transform": self.transform, "seed": self.seed}
