"""Post-hoc quantizers (nothing trained): sign of seeded random projections, and ITQ."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hashrec.indexer.quantizers.base import Quantizer, check_bits, random_projection
from hashrec.retrieval.query_codes import TRANSFORMS, Transform, mips_augment, pack_signs


@dataclass
class SignQuantizer(Quantizer):
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
    transform: Transform = "mips"
    seed: int = 0
    projection: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_bits(self.bits)
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
class ITQQuantizer(Quantizer):
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
    transform: Transform = field(default="mips", init=False)
    projection: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_bits(self.bits)

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
