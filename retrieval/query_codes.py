"""The one rule that turns vectors into packed binary codes, shared by the indexer and the service.

An artifact's ``code_projection`` W and ``transform`` fix it: a query (user-side) vector x gets
``sign(augment(x) @ W)``, packed to uint8 of bits / 8 bytes. The indexer codes its users with
this function and the service codes a visitor with it, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: ``rotation``: the vector as it is; ``mips``: the MIPS-to-cosine reduction (simple-LSH).
Transform = Literal["rotation", "mips"]
TRANSFORMS: tuple[Transform, ...] = ("rotation", "mips")


def pack_signs(x: np.ndarray) -> np.ndarray:
    """Pack ``x > 0`` into uint8 codes of x.shape[1] / 8 bytes per row."""
    return np.packbits(x > 0, axis=1)


def augment_queries(queries: np.ndarray) -> np.ndarray:
    """Query vectors scaled to unit norm with a zero norm coordinate appended (float32)."""
    x = np.asarray(queries)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.hstack([x / np.where(norms > 0, norms, 1.0), np.zeros((len(x), 1))]).astype(np.float32)


def augment_items(items: np.ndarray) -> np.ndarray:
    """Item vectors scaled so the largest norm is 1, with sqrt(1 - |x|^2) appended (float32)."""
    max_norm = float(np.linalg.norm(items, axis=1).max()) if len(items) else 1.0
    scaled = items / (max_norm or 1.0)
    extra = np.sqrt(np.clip(1.0 - np.square(scaled).sum(axis=1), 0.0, None))
    return np.hstack([scaled, extra[:, None]]).astype(np.float32)


def mips_augment(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The MIPS-to-cosine reduction (simple-LSH): one extra coordinate on each side.

    The cosine of an augmented pair is proportional to the inner product, so sign codes keep
    popular (large-norm) items near every query instead of ranking by angle alone.
    """
    return augment_queries(users), augment_items(items)


def query_codes(vectors: np.ndarray, projection: np.ndarray, transform: Transform) -> np.ndarray:
    """Packed codes of query vectors (n, d) by an artifact's projection (d [+ 1], bits) and transform."""
    x = augment_queries(vectors) if transform == "mips" else np.asarray(vectors, dtype=np.float32)
    return pack_signs(x @ projection)
