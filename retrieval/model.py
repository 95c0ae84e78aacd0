"""A loaded, servable model: arrays (mmapped), id maps and the binary item index."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
from hashrec.model_store import Artifact, CorruptVersion
from hashrec.retrieval.ids import IdIndex
from hashrec.retrieval.kernels import hamming_knn_kernel, kernels_available
from hashrec.retrieval.query_codes import Transform
from hashrec.retrieval.schema import (
    ITEM_INDEX_FILE,
    Layout,
    check_recommender,
    history_exponent,
    layout_of,
    query_encoding,
    walk_exponents,
)
from hashrec.retrieval.walk import GraphWalk

#: Catalogues at least this large get a binary IVF index by default (``kind="auto"``). Measured
#: here (benchmarks/serving.md): at 40k items the flat scan beats every approximate index, at 1M
#: binary IVF answers several times faster at >= 0.95 recall of the flat top-C.
IVF_MIN_ITEMS = 200_000
HAMMING_KERNELS = ("auto", "faiss", "numba")
RERANK_DTYPES = ("float32", "float16", "int8")


def quantize_int8(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-dimension int8 codes of float vectors and their float32 scales, (n, d) and (d,):
    ``vectors ~= codes * scales``, each entry within half a scale step."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(vectors).max(axis=0) / 127.0 if len(vectors) else np.ones(vectors.shape[1], np.float32)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.clip(np.rint(vectors / scales), -127, 127).astype(np.int8)
    return codes, scales


def ivf_nlist(n_items: int) -> int:
    """Inverted lists for a binary IVF over n_items: about 4 sqrt(N), at most 4096 (training cost)."""
    return int(max(1, min(4096, round(4 * np.sqrt(n_items)))))


def build_binary_index(
    item_codes: np.ndarray,
    kind: str = "flat",
    nlist: int | None = None,
    nprobe: int = 16,
    seed: int = 0,
) -> faiss.IndexBinary:
    """Hamming index over packed uint8 item codes, ids equal to item rows.

    Parameters
    ----------
    kind : {"flat", "ivf", "auto"}
        ``flat``: exact scan (IndexBinaryFlat). ``ivf``: IndexBinaryIVF with ``nlist`` lists
        (default :func:`ivf_nlist`), trained on at most 40 codes per list. ``auto``: ivf from
        :data:`IVF_MIN_ITEMS` items on, else flat.
    nprobe : int
        Lists probed per query (IVF); stored in the index. :func:`tune_nprobe` chooses it.
    """
    codes = np.ascontiguousarray(item_codes, dtype=np.uint8)
    bits = codes.shape[1] * 8
    if kind == "auto":
        kind = "ivf" if len(codes) >= IVF_MIN_ITEMS else "flat"
    if kind == "flat":
        index = faiss.IndexBinaryFlat(bits)
        index.add(codes)
        return index
    if kind != "ivf":
        raise ValueError(f"binary index kind must be flat, ivf or auto, got {kind!r}")
    nlist = nlist or ivf_nlist(len(codes))
    ivf = faiss.index_binary_factory(bits, f"BIVF{nlist}")  # an IndexBinaryIVF owning its quantizer
    ivf.cp.niter = 10
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = 40
    sample = np.random.default_rng(seed).permutation(len(codes))[: 40 * nlist]
    ivf.train(codes[np.sort(sample)])
    ivf.add(codes)
    ivf.nprobe = min(nprobe, nlist)
    return ivf


def rows_sorted(indptr: np.ndarray, indices: np.ndarray) -> bool:
    """True when every CSR row's indices are in ascending order (values may drop only at a row start)."""
    drops = np.flatnonzero(np.diff(indices) < 0) + 1
    return bool(np.isin(drops, indptr).all())


def index_kind(index: faiss.IndexBinary) -> str:
    """``flat`` or ``ivf`` (or the faiss class name for any other binary index)."""
    if isinstance(index, faiss.IndexBinaryFlat):
        return "flat"
    if isinstance(index, faiss.IndexBinaryIVF):
        return "ivf"
    return type(index).__name__


def flat_recall(
    index: faiss.IndexBinary, item_codes: np.ndarray, queries: np.ndarray, k: int, nprobe: int
) -> float:
    """Mean fraction of the exact (flat) Hamming top-k that ``index`` returns with ``nprobe``.

    Ties at the k-th distance make several exact top-k sets equally right, so an item counts as
    found when its distance is within the exact k-th distance of that query.
    """
    flat = build_binary_index(item_codes, "flat")
    queries = np.ascontiguousarray(queries, dtype=np.uint8)
    exact_d, _ = flat.search(queries, k)
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    approx_d, approx_i = index.search(queries, k, params=params)
    found = (approx_i >= 0) & (approx_d <= exact_d[:, -1:])
    return float(found.sum(axis=1).mean() / k)


def tune_nprobe(
    index: faiss.IndexBinary, item_codes: np.ndarray, queries: np.ndarray, k: int, target: float = 0.95
) -> tuple[int, float]:
    """Smallest power-of-two nprobe whose recall of the flat top-k reaches ``target``; sets it."""
    nlist = int(index.nlist)
    nprobe = 1
    while True:
        recall = flat_recall(index, item_codes, queries, k, nprobe)
        if recall >= target or nprobe >= nlist:
            index.nprobe = nprobe
            return nprobe, recall
        nprobe = min(nlist, nprobe * 2)


@dataclass
class ServingModel:
    """Everything one version needs to answer queries.

    Parameters
    ----------
    version : str
        Version name, reported with every answer.
    arrays : mapping of str to ndarray
        The recommender arrays named in ``retrieval.schema.RECOMMENDER_ARRAYS``.
    binary_index : faiss.IndexBinary
        Hamming index over ``item_codes``, ids equal to item rows.
    manifest : dict
        The manifest summary (empty for a model that was never published).
    """

    version: str
    arrays: Mapping[str, np.ndarray]
    binary_index: faiss.IndexBinary
    manifest: dict[str, Any] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    hamming_kernel: str = "auto"
    rerank_dtype: str = "float32"
    #: How far ahead the numba scan prefetches codes; None: the CPU's default (kernels.prefetch_words).
    scan_prefetch_bytes: int | None = None

    def __post_init__(self) -> None:
        # Plain ndarray views of the (mmapped) arrays: the same shared pages, without np.memmap's
        # per-indexing overhead (about 7 us per lookup, 5 lookups per request).
        a = {name: np.asarray(value) for name, value in self.arrays.items()}
        config = self.manifest.get("config") or {}
        self.layout: Layout = layout_of(self.version, config)
        self.user_ids: np.ndarray = a["user_ids"]
        self.item_ids: np.ndarray = a["item_ids"]
        self.item_codes: np.ndarray = a["item_codes"]
        self.seen_indptr: np.ndarray = np.asarray(a["seen_indptr"])
        self.seen_indices: np.ndarray = a["seen_indices"]
        self.item_popularity: np.ndarray = a["item_popularity"]
        self.user_index = IdIndex(self.user_ids)
        self.item_index = IdIndex(self.item_ids)
        self.bits = self.item_codes.shape[1] * 8
        #: The walk scorer (walk layout), None for the embedding layout.
        self.walk: GraphWalk | None = None
        if self.layout == "walk":
            self.walk = GraphWalk(
                (self.seen_indptr, self.seen_indices),
                (a["item_users_indptr"], a["item_users_indices"]),
                a["query_weights"],
                a["query_scale"],
                walk_exponents(self.version, config),
            )
            empty = np.empty((len(self.user_ids), 0), np.float32)
            a.update(user_embeddings=empty, item_embeddings=np.empty((len(self.item_ids), 0), np.float32))
            a["user_codes"] = np.empty((len(self.user_ids), 0), np.uint8)
        # Embedding layout only (zero-width under the walk layout, which has no vectors).
        self.user_embeddings: np.ndarray = a["user_embeddings"]
        self.item_embeddings: np.ndarray = a["item_embeddings"]
        self.user_codes: np.ndarray = a["user_codes"]
        self.code_projection: np.ndarray | None = a.get("code_projection")
        self.code_transform: Transform = query_encoding(self.version, config, a, self.bits)
        #: A visitor's vector is sum_j item_j / degree_j ** history_exponent (embedding layout).
        self.history_exponent = history_exponent(self.version, config)
        popularity = np.asarray(self.item_popularity)
        # Most popular first; enough for any k plus exclusions, without a full sort per request.
        self.popular_order = np.argsort(-popularity, kind="stable")[:20_000].astype(np.int64)
        if self.hamming_kernel not in HAMMING_KERNELS:
            raise ValueError(f"hamming_kernel must be one of {HAMMING_KERNELS}, got {self.hamming_kernel!r}")
        if self.scan_prefetch_bytes is not None and self.scan_prefetch_bytes < 0:
            raise ValueError(f"scan_prefetch_bytes must be >= 0, got {self.scan_prefetch_bytes}")
        if self.rerank_dtype not in RERANK_DTYPES:
            raise ValueError(f"rerank_dtype must be one of {RERANK_DTYPES}, got {self.rerank_dtype!r}")
        self.index_kind = index_kind(self.binary_index)
        # The vectorized scan replaces faiss's flat scan only (same results, tested); an IVF
        # index is searched by faiss. Codes are read as uint64 words: a view, no copy.
        use_kernel = (
            self.hamming_kernel != "faiss"
            and self.index_kind == "flat"
            and self.item_codes.shape[1] % 8 == 0
            and kernels_available()
        )
        if self.hamming_kernel == "numba" and not use_kernel:
            raise ValueError("hamming_kernel='numba' needs numba, a flat index and codes of 64k bits")
        self.scan = "numba" if use_kernel else "faiss"
        #: The item codes as uint64 words for the numba kernels, None when faiss scans.
        self.scan_words: np.ndarray | None = (
            np.ascontiguousarray(self.item_codes, dtype=np.uint8).view(np.uint64).ravel()
            if use_kernel
            else None
        )
        # Rerank targets: the float32 embeddings (mmapped, shared), or float16 / int8 ones (1/2, 1/4
        # of the bytes): the artifact's own when it has them (mmapped), else converted at load.
        # int8 scores are (query * rerank_scale) . codes, the per-dimension scale folded into the query.
        self.rerank_scale: np.ndarray | None = None
        if self.rerank_dtype == "float16":
            stored16 = a.get("item_embeddings_f16")
            self.rerank_items: np.ndarray = (
                stored16 if stored16 is not None else np.asarray(self.item_embeddings, dtype=np.float16)
            )
        elif self.rerank_dtype == "int8":
            stored8, scale8 = a.get("item_embeddings_i8"), a.get("item_embeddings_i8_scale")
            if stored8 is None or scale8 is None:
                stored8, scale8 = quantize_int8(self.item_embeddings)
            self.rerank_items, self.rerank_scale = stored8, np.asarray(scale8, dtype=np.float32)
        else:
            self.rerank_items = self.item_embeddings

    @classmethod
    def from_arrays(
        cls,
        version: str,
        arrays: Mapping[str, np.ndarray],
        binary_index: faiss.IndexBinary | None = None,
        **options: Any,
    ) -> ServingModel:
        """Serve arrays held in memory (the indexer evaluates a model this way before publishing).

        ``binary_index`` defaults to an exact flat index; ``options`` are ``hamming_kernel``,
        ``rerank_dtype`` and ``scan_prefetch_bytes``.
        """
        index = binary_index if binary_index is not None else build_binary_index(arrays["item_codes"])
        return cls(version=version, arrays=arrays, binary_index=index, **options)

    @classmethod
    def from_artifact(cls, artifact: Artifact, **options: Any) -> ServingModel:
        """Serve a verified artifact: arrays mmapped, the index (flat or IVF) read after its
        checksum matched. ``options``: ``hamming_kernel``, ``rerank_dtype``, ``scan_prefetch_bytes``."""
        arrays = dict(check_recommender(artifact))  # with the optional arrays present
        # mmap: several workers share the page cache instead of one copy each.
        flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
        index = faiss.read_index_binary(str(artifact.file_path(ITEM_INDEX_FILE)), flag)
        if index.ntotal != len(arrays["item_ids"]) or index.d != artifact.manifest.bits:
            raise CorruptVersion(f"version {artifact.version}: {ITEM_INDEX_FILE} disagrees with item_codes")
        summary = artifact.manifest.model_dump(exclude={"files"})
        return cls(version=artifact.version, arrays=arrays, binary_index=index, manifest=summary, **options)

    @property
    def encodes_histories(self) -> bool:
        """True where a visitor's history can be coded (a walk model, or a code projection)."""
        return self.walk is not None or self.code_projection is not None

    def item_labels(self, rows: np.ndarray) -> list[str]:
        """External ids of item rows, as str whatever the artifact's id dtype."""
        return self.item_index.labels(rows)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self, user_row: int) -> np.ndarray:
        """Item rows the user interacted with in training."""
        return self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]]

    def hamming_knn(
        self, codes: np.ndarray, k: int, nprobe: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(distances int32, item rows int64) of the k nearest codes, (n, k), nearest first.

        Flat: exact, ties by item row (faiss's order, which the vectorized kernel reproduces).
        IVF: approximate, -1 where the probed lists hold fewer than k; ``nprobe`` overrides the
        index's own for this call.
        """
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        k = min(k, self.n_items)
        if self.scan_words is not None:
            return hamming_knn_kernel(self.scan_words, codes, k, prefetch_bytes=self.scan_prefetch_bytes)
        if nprobe is not None and self.index_kind == "ivf":
            distances, items = self.binary_index.search(
                codes, k, params=faiss.SearchParametersIVF(nprobe=nprobe)
            )
        else:
            distances, items = self.binary_index.search(codes, k)
        return distances.astype(np.int32, copy=False), items.astype(np.int64, copy=False)
