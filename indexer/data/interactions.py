"""The in-memory interaction data set: id maps plus train and test CSR matrices."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["SPLITS", "Interactions", "pairs_to_csr"]

SPLITS = ("files", "random", "temporal")
_FINGERPRINT_TAG = b"hashrec.interactions.v1\x00"


@dataclass(frozen=True, eq=False)
class Interactions:
    """Implicit-feedback interactions with a train/test split.

    Attributes
    ----------
    user_ids : numpy.ndarray
        ``(n_users,)`` unicode array; the external id of each dense user row.
    item_ids : numpy.ndarray
        ``(n_items,)`` unicode array; the external id of each dense item column.
    train : scipy.sparse.csr_matrix
        ``(n_users, n_items)`` float32 matrix of 1.0 values, duplicates collapsed, sorted indices.
    test : scipy.sparse.csr_matrix
        Same shape and layout as ``train``.
    source : str
        Where the data came from, e.g. ``"lightgcn:/path/to/dir"``.
    split : str
        How train and test were made: ``"files"``, ``"random"`` or ``"temporal"``.

    Notes
    -----
    Two instances compare equal when their ids and their train and test pairs are equal;
    ``source`` and ``split`` are descriptive and do not take part.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train: sp.csr_matrix
    test: sp.csr_matrix
    source: str
    split: str

    def __post_init__(self) -> None:
        shape = (len(self.user_ids), len(self.item_ids))
        for name in ("user_ids", "item_ids"):
            ids = getattr(self, name)
            if not isinstance(ids, np.ndarray) or ids.ndim != 1 or ids.dtype.kind != "U":
                raise ValueError(f"{name} must be a 1-d numpy unicode array")
        for name in ("train", "test"):
            matrix = getattr(self, name)
            if not sp.issparse(matrix) or matrix.format != "csr":
                raise ValueError(f"{name} must be a scipy.sparse CSR matrix")
            if matrix.shape != shape:
                raise ValueError(f"{name} has shape {matrix.shape}, expected {shape}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items (columns)."""
        return len(self.item_ids)

    def fingerprint(self) -> str:
        """Return a content hash of the ids and the train/test pairs.

        Returns
        -------
        str
            SHA-256 hex digest over the user and item ids and the ``indptr`` and ``indices``
            arrays of ``train`` and ``test``. Equal data sets have equal fingerprints.
        """
        digest = hashlib.sha256(_FINGERPRINT_TAG)
        for ids in (self.user_ids, self.item_ids):
            values = ids.tolist()
            digest.update(np.asarray([len(values)], dtype="<i8").tobytes())
            digest.update(np.asarray([len(v) for v in values], dtype="<i8").tobytes())
            digest.update("".join(values).encode("utf-8", "surrogatepass"))
        for matrix in (self.train, self.test):
            digest.update(np.asarray(matrix.indptr, dtype="<i8").tobytes())
            digest.update(np.asarray(matrix.indices, dtype="<i8").tobytes())
        return digest.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interactions):
            return NotImplemented
        return (
            np.array_equal(self.user_ids, other.user_ids)
            and np.array_equal(self.item_ids, other.item_ids)
            and _same_pattern(self.train, other.train)
            and _same_pattern(self.test, other.test)
        )

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return (
            f"Interactions(n_users={self.n_users}, n_items={self.n_items}, "
            f"train_nnz={self.train.nnz}, test_nnz={self.test.nnz}, "
            f"split={self.split!r}, source={self.source!r})"
        )


def _same_pattern(a: sp.csr_matrix, b: sp.csr_matrix) -> bool:
    """Whether two canonical CSR matrices hold the same nonzero positions."""
    return a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)


def pairs_to_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Build a canonical binary float32 CSR matrix from (row, col) pairs sorted by row then col.

    Parameters
    ----------
    rows, cols : numpy.ndarray
        Integer arrays of equal length, unique pairs, sorted by row then column.
    shape : tuple of int
        ``(n_rows, n_cols)``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Values 1.0, sorted indices, no duplicates.
    """
    n_rows, _ = shape
    index_dtype = np.int32 if max(len(cols), max(shape)) < np.iinfo(np.int32).max else np.int64
    counts = np.bincount(rows, minlength=n_rows) if len(rows) else np.zeros(n_rows, np.int64)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(counts, out=indptr[1:])
    data = np.ones(len(cols), dtype=np.float32)
    matrix = sp.csr_matrix((data, np.asarray(cols, dtype=index_dtype), indptr), shape=shape, copy=False)
    matrix.has_sorted_indices = True
    return matrix
