"""Fixed array names and dtypes of a recommender version (format_version 1).

Both sides use these names: the indexer writes them, the service reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from hashrec.model_store.errors import CorruptVersion
from hashrec.model_store.store import Artifact
from hashrec.retrieval.query_codes import TRANSFORMS, Transform

#: name -> (dtype kind or exact dtype, number of dimensions)
RECOMMENDER_ARRAYS: dict[str, tuple[str, int]] = {
    "user_ids": ("U", 1),  # external id of each user row
    "item_ids": ("U", 1),  # external id of each item row
    "user_embeddings": ("float32", 2),  # (n_users, dim), the rerank query
    "item_embeddings": ("float32", 2),  # (n_items, dim), the rerank target
    "user_codes": ("uint8", 2),  # (n_users, bits / 8), the Hamming query
    "item_codes": ("uint8", 2),  # (n_items, bits / 8), also held by the faiss index
    "seen_indptr": ("int64", 1),  # CSR of each user's training items
    "seen_indices": ("int32", 1),
    "item_popularity": ("int64", 1),  # training interactions per item
}
#: arrays a version may also hold: name -> (dtype, number of dimensions)
OPTIONAL_ARRAYS: dict[str, tuple[str, int]] = {
    "code_projection": ("float32", 2),  # (d [+ 1], bits): how new queries are encoded
    "item_embeddings_f16": ("float16", 2),  # (n_items, dim): float16 rerank targets
    "item_embeddings_i8": ("int8", 2),  # (n_items, dim): int8 rerank targets ...
    "item_embeddings_i8_scale": ("float32", 1),  # (dim,): ... times these per-dimension scales
}
ITEM_INDEX_FILE = "item_codes.faissindex"


def query_encoding(
    version: str, config: Mapping[str, Any], arrays: Mapping[str, np.ndarray], bits: int
) -> Transform:
    """The transform new queries are coded with, after checking what the service reads for it:
    ``config.quantizer`` an object, its ``transform`` known, and ``code_projection`` (if present)
    of shape (dim [+ 1 for mips], bits).

    The manifest's config is free-form for the store; these are the parts a service relies on.

    Raises
    ------
    CorruptVersion
        Naming the version and the field.
    """
    quantizer = config.get("quantizer", {})
    if not isinstance(quantizer, Mapping):
        raise CorruptVersion(
            f"version {version}: config.quantizer is {type(quantizer).__name__}, expected an object"
        )
    transform = quantizer.get("transform", "mips")
    if transform not in TRANSFORMS:
        raise CorruptVersion(
            f"version {version}: config.quantizer.transform {transform!r} is not one of "
            f"{', '.join(TRANSFORMS)}"
        )
    projection = arrays.get("code_projection")
    if projection is not None:
        dim = arrays["item_embeddings"].shape[1]
        expected = (dim + 1 if transform == "mips" else dim, bits)
        if projection.shape != expected:
            raise CorruptVersion(
                f"version {version}: code_projection has shape {projection.shape}, expected {expected} "
                f"({transform} transform, {dim}-dim vectors, {bits} bits)"
            )
    return transform  # type: ignore[no-any-return]


def check_recommender(artifact: Artifact) -> dict[str, np.ndarray]:
    """Load every recommender array (mmapped), and the optional ones present, and check names,
    dtypes and shapes agree.

    Raises
    ------
    CorruptVersion
        Naming the first array that is missing or inconsistent.
    """
    arrays = {name: artifact.array(name) for name in RECOMMENDER_ARRAYS}
    for name, (dtype, ndim) in RECOMMENDER_ARRAYS.items():
        array = arrays[name]
        ok_dtype = array.dtype.kind == "U" if dtype == "U" else array.dtype == np.dtype(dtype)
        if not ok_dtype or array.ndim != ndim:
            raise CorruptVersion(
                f"version {artifact.version}: {name} is {array.dtype}[{array.ndim}d], "
                f"expected {dtype}[{ndim}d]"
            )
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
    code_bytes = artifact.manifest.bits // 8
    expected = {
        "user_embeddings": (n_users, arrays["item_embeddings"].shape[1]),
        "item_embeddings": (n_items, arrays["user_embeddings"].shape[1]),
        "user_codes": (n_users, code_bytes),
        "item_codes": (n_items, code_bytes),
        "seen_indptr": (n_users + 1,),
        "item_popularity": (n_items,),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise CorruptVersion(
                f"version {artifact.version}: {name} has shape {arrays[name].shape}, expected {shape}"
            )
    for name, (dtype, ndim) in OPTIONAL_ARRAYS.items():
        if artifact.has(f"{name}.npy"):
            arrays[name] = artifact.array(name)
            if arrays[name].dtype != np.dtype(dtype) or arrays[name].ndim != ndim:
                raise CorruptVersion(
                    f"version {artifact.version}: {name} is {arrays[name].dtype}[{arrays[name].ndim}d], "
                    f"expected {dtype}[{ndim}d]"
                )
    if (
        "item_embeddings_f16" in arrays
        and arrays["item_embeddings_f16"].shape != arrays["item_embeddings"].shape
    ):
        raise CorruptVersion(
            f"version {artifact.version}: item_embeddings_f16 has shape "
            f"{arrays['item_embeddings_f16'].shape}, expected {arrays['item_embeddings'].shape}"
        )
    if ("item_embeddings_i8" in arrays) != ("item_embeddings_i8_scale" in arrays):
        raise CorruptVersion(
            f"version {artifact.version}: item_embeddings_i8 and item_embeddings_i8_scale come together"
        )
    if "item_embeddings_i8" in arrays and (
        arrays["item_embeddings_i8"].shape != arrays["item_embeddings"].shape
        or arrays["item_embeddings_i8_scale"].shape != (arrays["item_embeddings"].shape[1],)
    ):
        raise CorruptVersion(
            f"version {artifact.version}: item_embeddings_i8 {arrays['item_embeddings_i8'].shape} / "
            f"scale {arrays['item_embeddings_i8_scale'].shape} do not match item_embeddings "
            f"{arrays['item_embeddings'].shape}"
        )
    if int(arrays["seen_indptr"][-1]) != len(arrays["seen_indices"]):
        raise CorruptVersion(f"version {artifact.version}: seen_indptr does not end at nnz")
    if not artifact.has(ITEM_INDEX_FILE):
        raise CorruptVersion(f"version {artifact.version}: {ITEM_INDEX_FILE} is missing")
    query_encoding(artifact.version, artifact.manifest.config, arrays, artifact.manifest.bits)
    return arrays
