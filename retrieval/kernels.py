"""Numba kernels for the flat serving path: an exact Hamming k-NN scan and a fused two-stage search.

faiss's IndexBinaryFlat keeps a heap per query and pays for it per code. The scan here works in
chunks of ``SCAN_CHUNK_ITEMS`` codes, small enough for their distances to stay in cache: it computes
a chunk's distances in one branch-free loop (XOR + popcount, which LLVM turns into vector popcounts
where the CPU has them; the codes 2 KiB ahead are prefetched in software except on AMD Zen 4), then tests
64 distances at a time against a threshold in one vector compare, whose 64-bit mask leads straight
to the codes that can enter. The first chunk's k best are found by counting; later codes enter
below a running threshold, and the kept buffer is shrunk to the k best by a counting sort when it
fills. It returns what faiss does, exactly: the k smallest (distance, row) pairs in that order
(``benchmarks/hamming_scan.py`` measures it against faiss).

The fused search runs the whole query (scan, exclusions, first C kept, rerank, top-k) in one call,
so a single request pays no per-step numpy overhead; it answers what ``retrieval.search`` does in
numpy, scores up to float32 rounding (tests/service/test_speed_paths.py). For one known user
(the common cache miss) ``two_stage_user_kernel`` also reads the user's code, vector and seen rows
from a :class:`FusedArrays` layout made at load, so the request makes a single compiled call.
Without numba, ``kernels_available()`` is False and the numpy/faiss path serves.
"""

from __future__ import annotations

import functools
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_COMPILED: Any = None


def _compiled() -> Any:
    """The kernel module (``retrieval.numba_kernels``), or None without numba."""
    global _COMPILED
    if _COMPILED is None:
        try:
            _COMPILED = _import_kernels()
        except ImportError:
            _COMPILED = False
    return _COMPILED or None


def _required() -> Any:
    """The kernel module; ImportError without numba."""
    kernels = _compiled()
    if kernels is None:
        raise ImportError("the numba kernels need numba")
    return kernels


def _import_kernels() -> Any:
    """Import the kernel module; where numba finds no writable cache directory (a read-only
    install), it refuses ``cache=True``, so cache in a private temporary directory instead."""
    try:
        from hashrec.retrieval import numba_kernels
    except RuntimeError as err:
        from numba.core import config

        cache_dir = tempfile.mkdtemp(prefix="hashrec-numba-")
        config.CACHE_DIR = cache_dir  # type: ignore[attr-defined]  # set from the environment at import
        log.warning("numba cache moved to %s: %s", cache_dir, err)
        sys.modules.pop("hashrec.retrieval.numba_kernels", None)
        from hashrec.retrieval import numba_kernels
    return numba_kernels


_NO_ROWS = np.empty(0, np.int64)

#: Codes per chunk of the scan: 32 KiB of uint8 distances (64 KiB for codes of 256 bits or more).
SCAN_CHUNK_ITEMS = 1 << 15


#: Software prefetch distance of the scan: 2 KiB of codes ahead. Measured at 10M items
#: (benchmarks/serving.md): 1.2-1.6x faster on an Intel AVX-512 machine and 1.05-1.4x on an AMD
#: Zen 3 (AVX2), but 0.7-0.8x on an AMD Zen 4, whose hardware prefetchers keep up alone.
PREFETCH_BYTES = 2048


def prefetches(vendor: str, family: int, model: int) -> bool:
    """Whether the scan prefetches on this x86 CPU: yes on Intel and on AMD before Zen 4.

    Zen 4 is AMD family 25 (0x19) from model 0x10; later families (Zen 5) are taken to be like
    it, unmeasured.
    """
    if vendor == "GenuineIntel":
        return True
    if vendor == "AuthenticAMD":
        return family < 25 or (family == 25 and model < 0x10)
    return False


def default_prefetch_bytes(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    """The scan's prefetch distance for this CPU: ``PREFETCH_BYTES`` where :func:`prefetches`
    says so, else 0 (off, also where ``cpuinfo`` cannot be read)."""
    fields: dict[str, str] = {}
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if not line.strip():
                    break  # the first CPU's block is enough: every core is alike
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return 0
    try:
        family, model = int(fields.get("cpu family", "0")), int(fields.get("model", "0"))
    except ValueError:
        return 0
    return PREFETCH_BYTES if prefetches(fields.get("vendor_id", ""), family, model) else 0


@functools.cache
def _default_prefetch_words() -> int:
    return default_prefetch_bytes() // 8


def prefetch_words(prefetch_bytes: int | None) -> int:
    """Prefetch distance in uint64 words (a multiple of a cache line); None: this CPU's default."""
    if prefetch_bytes is None:
        return _default_prefetch_words()
    if prefetch_bytes < 0:
        raise ValueError(f"prefetch_bytes must be >= 0, got {prefetch_bytes}")
    return (prefetch_bytes // 64) * 8


def compiled_kernels() -> Any:
    """The compiled kernel module (``retrieval.numba_kernels``), or None without numba."""
    return _compiled()


def kernels_available() -> bool:
    """True when numba is installed and the kernels compiled."""
    return _compiled() is not None


def _prepare(
    words: np.ndarray, codes: np.ndarray, k: int, chunk: int
) -> tuple[Any, np.ndarray, int, np.ndarray]:
    """(kernel module, query codes as uint64 words, catalogue size, distance buffer).

    The buffer holds one chunk's distances: ``chunk`` codes, at least k (the first chunk must
    hold the first k), at most the catalogue. ImportError without numba.
    """
    kernels = _required()
    queries = np.ascontiguousarray(codes, dtype=np.uint8).view(np.uint64)
    n_items = words.shape[0] // queries.shape[1]
    bits = 64 * queries.shape[1]
    buffer = np.empty(min(n_items, max(chunk, k)), np.uint8 if bits < 256 else np.uint16)
    return kernels, queries, n_items, buffer


def hamming_knn_kernel(
    words: np.ndarray,
    codes: np.ndarray,
    k: int,
    chunk: int = SCAN_CHUNK_ITEMS,
    prefetch_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Hamming k-NN of packed uint8 ``codes`` (n, 8w) against item ``words`` (uint64, N * w).

    Same answer as faiss.IndexBinaryFlat.search (k <= N): (distances int32, rows int64), (n, k).
    ``chunk``: codes per chunk of the scan; ``prefetch_bytes``: how far ahead the scan prefetches
    codes (0: not at all; None: this CPU's default). Neither changes the answer.
    """
    kernels, queries, n_items, buffer = _prepare(words, codes, k, chunk)
    k = min(k, n_items)
    out_d = np.empty((len(queries), k), np.int32)
    out_i = np.empty((len(queries), k), np.int64)
    if k > 0:
        kernels.knn(words, queries, k, buffer, out_d, out_i, prefetch_words(prefetch_bytes))
    return out_d, out_i


def two_stage_kernel(
    words: np.ndarray,
    codes: np.ndarray,
    vectors: np.ndarray,
    targets: np.ndarray,
    k: int,
    n_candidates: int,
    exclude_ptr: np.ndarray,
    exclude_rows: np.ndarray,
    chunk: int = SCAN_CHUNK_ITEMS,
    prefetch_bytes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hamming top-``n_candidates`` not excluded, exact rerank, top-k: (rows int64, scores float32).

    ``targets`` are the float32 or int8 rerank rows, or float16 ones viewed as uint16; ``vectors``
    the float32 queries (already scaled for int8); ``exclude_rows[exclude_ptr[r]:exclude_ptr[r + 1]]``
    query r's excluded rows, sorted. Rows past the candidates found are -1 with score -inf.
    ``chunk`` and ``prefetch_bytes``: as for :func:`hamming_knn_kernel`.
    """
    lengths = exclude_ptr[1:] - exclude_ptr[:-1]
    longest = int(lengths[0]) if len(lengths) == 1 else int(lengths.max(initial=0))
    wanted = n_candidates + longest  # C after each query's exclusions are skipped
    kernels, queries, n_items, buffer = _prepare(words, codes, wanted, chunk)
    fetch = min(n_items, wanted)
    out_i = np.empty((len(queries), k), np.int64)
    out_s = np.empty((len(queries), k), np.float32)
    if fetch > 0 and n_candidates > 0:
        kernels.two_stage(
            words,
            queries,
            fetch,
            n_candidates,
            exclude_ptr,
            exclude_rows,
            targets,
            vectors,
            buffer,
            out_i,
            out_s,
            prefetch_words(prefetch_bytes),
        )
    else:
        out_i.fill(-1)
        out_s.fill(-np.inf)
    return out_i, out_s


@dataclass(frozen=True)
class FusedArrays:
    """What the single-query kernels read, laid out once when a model is loaded.

    Parameters
    ----------
    item_words : ndarray of uint64, shape (n_items * words,)
        The item codes as 64-bit words (a view of ``item_codes``).
    user_words : ndarray of uint64, shape (n_users, words)
    user_vectors : ndarray of float32, shape (n_users, dim)
    query_scale : ndarray of float32, shape (dim,)
        Multiplies a query before it is scored (int8 rerank rows' scales; ones otherwise).
    seen_indptr, seen_indices : ndarray of int64, int32
        Each user's training items, every row sorted (the kernel searches them).
    rerank_rows : ndarray
        float32 or int8 rerank rows, or float16 ones viewed as uint16 (numba has no float16).
    prefetch_bytes : int or None
        How far ahead the scan prefetches codes; None: this CPU's default.
    """

    item_words: np.ndarray
    user_words: np.ndarray
    user_vectors: np.ndarray
    query_scale: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    rerank_rows: np.ndarray
    prefetch_bytes: int | None = None


def two_stage_user_kernel(
    arrays: FusedArrays,
    row: int,
    k: int,
    n_candidates: int,
    exclude_seen: bool,
    exclude_rows: np.ndarray | None = None,
    chunk: int = SCAN_CHUNK_ITEMS,
) -> tuple[np.ndarray, np.ndarray]:
    """Known user ``row``'s :func:`two_stage_kernel` answer, read from ``arrays`` in one call.

    With ``exclude_seen`` the user's seen rows are skipped, and ``exclude_rows`` (sorted, int64)
    in any case. Returns the valid (rows int64, scores float32) only, best first. ImportError
    without numba.
    """
    kernels = _required()
    return kernels.two_stage_user(  # type: ignore[no-any-return]
        arrays.item_words,
        arrays.user_words,
        arrays.user_vectors,
        arrays.query_scale,
        arrays.seen_indptr,
        arrays.seen_indices,
        arrays.rerank_rows,
        row,
        k,
        n_candidates,
        chunk,
        exclude_seen,
        exclude_rows if exclude_rows is not None else _NO_ROWS,
        prefetch_words(arrays.prefetch_bytes),
    )


def two_stage_query_kernel(
    arrays: FusedArrays,
    code: np.ndarray,
    vector: np.ndarray,
    k: int,
    n_candidates: int,
    exclude_rows: np.ndarray,
    chunk: int = SCAN_CHUNK_ITEMS,
) -> tuple[np.ndarray, np.ndarray]:
    """One query's :func:`two_stage_kernel` answer against ``arrays``, in one call.

    ``code`` is the query's packed uint8 code, ``vector`` its float32 vector (scaled here by
    ``arrays.query_scale``), ``exclude_rows`` the rows to skip (sorted, int64). Returns the valid
    (rows int64, scores float32) only, best first. ImportError without numba.
    """
    kernels = _required()
    return kernels.two_stage_query(  # type: ignore[no-any-return]
        arrays.item_words,
        np.ascontiguousarray(code, dtype=np.uint8).view(np.uint64),
        np.ascontiguousarray(vector, dtype=np.float32) * arrays.query_scale,
        arrays.rerank_rows,
        exclude_rows,
        k,
        n_candidates,
        chunk,
        prefetch_words(arrays.prefetch_bytes),
    )
