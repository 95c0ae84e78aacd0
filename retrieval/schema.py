"""Fixed array names and dtypes of a recommender version, per layout.

Both sides use these names: the indexer writes them, the service reads them. A version's
``config.layout`` names its layout: ``embedding`` (format_version 1's only one, the default when
absent): user and item vectors, the rerank an inner product; ``walk`` (format_version 2's
default): no vectors, the rerank the graph walk of ``retrieval.walk``. Ids are fixed-width
unicode (format 1) or UTF-8 bytes (format 2); both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from hashrec.model_store.errors import CorruptVersion
from hashrec.model_store.store import Artifact
from hashrec.retrieval.query_codes import TRANSFORMS, Transform
from hashrec.retrieval.walk import WALK_ARRAYS, WalkExponents

Layout = Literal["embedding", "walk"]
LAYOUTS: tuple[Layout, ...] = ("embedding", "walk")

#: name -> (dtype kind or exact dtype, number of dimensions); "ids": unicode or UTF-8 bytes
SHARED_ARRAYS: dict[str, tuple[str, int]] = {
    "user_ids": ("ids", 1),  # external id of each user row
    "item_ids": ("ids", 1),  # external id of each item row
    "item_codes": ("uint8", 2),  # (n_items, bits / 8), also held by the faiss index
    "seen_indptr": ("int64", 1),  # CSR of each user's training items
    "seen_indices": ("int32", 1),
    "item_popularity": ("int64", 1),  # training interactions per item
}
#: the embedding layout
RECOMMENDER_ARRAYS: dict[str, tuple[str, int]] = {
    **SHARED_ARRAYS,
    "user_embeddings": ("float32", 2),  # (n_users, dim), the rerank query
    "item_embeddings": ("float32", 2),  # (n_items, dim), the rerank target
    "user_codes": ("uint8", 2),  # (n_users, bits / 8), the Hamming query
}
LAYOUT_ARRAYS: dict[Layout, dict[str, tuple[str, int]]] = {
    "embedding": RECOMMENDER_ARRAYS,
    "walk": {**SHARED_ARRAYS, **WALK_ARRAYS},
}
#: arrays a version may also hold: name -> (dtype, number of dimensions)
OPTIONAL_ARRAYS: dict[str, tuple[str, int]] = {
    "code_projection": ("float32", 2),  # (d [+ 1], bits): how new queries are encoded
    "item_embeddings_f16": ("float16", 2),  # (n_items, dim): float16 rerank targets
    "item_embeddings_i8": ("int8", 2),  # (n_items, dim): int8 rerank targets ...
    "item_embeddings_i8_scale": ("float32", 1),  # (dim,): ... times these per-dimension scales
}
ITEM_INDEX_FILE = "item_codes.faissindex"


def layout_of(version: str, config: Mapping[str, Any]) -> Layout:
    """The version's layout (``config.layout``, ``embedding`` when absent); CorruptVersion if unknown."""
    layout = config.get("layout", "embedding")
    if layout not in LAYOUTS:
        raise CorruptVersion(
            f"version {version}: config.layout {layout!r} is not one of {', '.join(LAYOUTS)}"
        )
    return layout  # type: ignore[no-any-return]


def history_exponent(version: str, config: Mapping[str, Any]) -> float:
    """The degree exponent e of a visitor's vector sum_j item_j / d_j^e (embedding layout).

    The closed form's users are exactly that sum with e = 2 beta (``encoders.closed_form``), so a
    visitor with a user's history gets the user's vector; trained encoders get LightGCN's e = 1/2.
    """
    if config.get("encoder") != "gfcf":
        return 0.5
    encoder_config = config.get("encoder_config")
    beta = encoder_config.get("beta", 0.5) if isinstance(encoder_config, Mapping) else 0.5
    if not isinstance(beta, int | float) or not 0.0 <= float(beta) <= 2.0:
        raise CorruptVersion(
            f"version {version}: config.encoder_config.beta {beta!r} is not a number in [0, 2]"
        )
    return 2.0 * float(beta)


def walk_exponents(version: str, config: Mapping[str, Any]) -> WalkExponents:
    """The walk layout's ``config.walk`` exponents; CorruptVersion naming what is wrong."""
    record = config.get("walk")
    if not isinstance(record, Mapping):
        raise CorruptVersion(f"version {version}: config.walk is missing or not an object")
    try:
        return WalkExponents.from_record(record)
    except (TypeError, ValueError) as error:
        raise CorruptVersion(f"version {version}: config.walk: {error}") from None


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


def _dtype_ok(array: np.ndarray, dtype: str) -> bool:
    if dtype == "ids":
        return array.dtype.kind in "US"
    return array.dtype == np.dtype(dtype)


def _check_graph(
    version: str, indptr: np.ndarray, indices: np.ndarray, n_rows: int, n_cols: int, name: str
) -> None:
    """A CSR safe to index with: n_rows + 1 offsets from 0 to nnz, never decreasing, entries in range."""
    if indptr.shape != (n_rows + 1,) or int(indptr[0]) != 0 or int(indptr[-1]) != len(indices):
        raise CorruptVersion(
            f"version {version}: {name}_indptr does not run from 0 to nnz over {n_rows} rows"
        )
    if (np.diff(indptr) < 0).any():
        raise CorruptVersion(f"version {version}: {name}_indptr decreases")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        raise CorruptVersion(f"version {version}: {name}_indices has entries outside 0..{n_cols - 1}")


def check_recommender(artifact: Artifact) -> dict[str, np.ndarray]:
    """Load every array of the version's layout (mmapped), and the optional ones present, and
    check names, dtypes and shapes agree.

    Raises
    ------
    CorruptVersion
        Naming the first array that is missing or inconsistent.
    """
    version, config = artifact.version, artifact.manifest.config
    layout = layout_of(version, config)
    wanted = LAYOUT_ARRAYS[layout]
    arrays = {name: artifact.array(name) for name in wanted}
    for name, (dtype, ndim) in wanted.items():
        array = arrays[name]
        if not _dtype_ok(array, dtype) or array.ndim != ndim:
            wanted_dtype = "unicode or bytes" if dtype == "ids" else dtype
            raise CorruptVersion(
                f"version {version}: {name} is {array.dtype}[{array.ndim}d], expected {wanted_dtype}[{ndim}d]"
            )
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
    bits = artifact.manifest.bits
    expected = {
        "item_codes": (n_items, bits // 8),
        "seen_indptr": (n_users + 1,),
        "item_popularity": (n_items,),
    }
    if layout == "embedding":
        expected.update(
            user_embeddings=(n_users, arrays["item_embeddings"].shape[1]),
            item_embeddings=(n_items, arrays["user_embeddings"].shape[1]),
            user_codes=(n_users, bits // 8),
        )
    else:
        expected.update(query_weights=(n_items, bits), query_scale=(n_items,))
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise CorruptVersion(
                f"version {version}: {name} has shape {arrays[name].shape}, expected {shape}"
            )
    if layout == "walk":
        walk_exponents(version, config)
        _check_graph(version, arrays["seen_indptr"], arrays["seen_indices"], n_users, n_items, "seen")
        _check_graph(
            version, arrays["item_users_indptr"], arrays["item_users_indices"], n_items, n_users, "item_users"
        )
        if len(arrays["item_users_indices"]) != len(arrays["seen_indices"]):
            raise CorruptVersion(f"version {version}: item_users and seen do not hold the same interactions")
        if not np.isfinite(arrays["query_scale"]).all():
            raise CorruptVersion(f"version {version}: query_scale holds NaN or infinity")
    for name, (dtype, ndim) in OPTIONAL_ARRAYS.items() if layout == "embedding" else ():
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
