"""The numba kernels behind ``service.kernels`` (imported only when numba is installed).

Module-level functions, so numba's on-disk cache (``cache=True``) finds them again in the next
process: a worker loads the compiled code instead of compiling it again.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def popcount(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


jit = numba.njit(boundscheck=False, nogil=True, cache=True)  # compiled code cached on disk


@jit
def shrink(ids, dist, m, k, bits):
    """Keep the k smallest (dist, position) of the first m entries, in place; return (m, t)."""
    hist = np.zeros(bits + 1, np.int64)
    for i in range(m):
        hist[dist[i]] += 1
    below = 0
    t = 0
    for t in range(bits + 1):
        if below + hist[t] >= k:
            break
        below += hist[t]
    take = k - below
    j = 0
    for i in range(m):
        v = dist[i]
        if v < t or (v == t and take > 0):
            if v == t:
                take -= 1
            ids[j] = ids[i]
            dist[j] = v
            j += 1
    return j, t


@jit
def sort_kept(ids, dist, m, bits, out_d, out_i):
    """Counting sort of the m kept entries by distance into out; stable, ties stay in row order."""
    start = np.zeros(bits + 2, np.int64)
    for i in range(m):
        start[dist[i] + 1] += 1
    for v in range(1, bits + 2):
        start[v] += start[v - 1]
    for i in range(m):
        p = start[dist[i]]
        start[dist[i]] = p + 1
        out_i[p] = ids[i]
        out_d[p] = dist[i]


@jit
def keep(ids, dist, m, k, bits, row, v, t):
    """Append (row, v) to the kept buffer; when it fills, shrink it to the k best and lower t
    below their worst, so later rows (larger row numbers) tie-break after the kept ones."""
    ids[m] = row
    dist[m] = v
    m += 1
    if m == ids.shape[0]:
        m, t = shrink(ids, dist, m, k, bits)
        t -= 1
    return m, t


@jit
def scan_one(words, q, w, k, ids, dist, out_d, out_i):
    n = words.shape[0] // w
    bits = w * 64
    t = bits  # accept codes with distance <= t
    m = 0
    block = np.empty(8, np.uint64)
    n8 = n - n % 8
    for s in range(0, n, 8):
        width = 8 if s < n8 else n - s
        hit = False
        for u in range(width):
            i = s + u
            v = np.uint64(0)
            for j in range(w):
                v += popcount(words[i * w + j] ^ q[j])
            block[u] = v
            hit |= v <= t
        if hit:
            for u in range(width):
                v = block[u]
                if v <= t:
                    m, t = keep(ids, dist, m, k, bits, s + u, v, t)
    m, t = shrink(ids, dist, m, min(k, m), bits)
    sort_kept(ids, dist, m, bits, out_d, out_i)


@jit
def scan_2words(words, q0, q1, k, ids, dist, out_d, out_i):
    """scan_one specialised to 128-bit codes (the default), where the unrolled loop vectorizes."""
    n = words.shape[0] // 2
    t = 128
    m = 0
    block = np.empty(8, np.uint64)
    n8 = n - n % 8
    for s in range(0, n8, 8):
        hit = False
        for u in range(8):
            i = s + u
            v = popcount(words[2 * i] ^ q0) + popcount(words[2 * i + 1] ^ q1)
            block[u] = v
            hit |= v <= t
        if hit:
            for u in range(8):
                v = block[u]
                if v <= t:
                    m, t = keep(ids, dist, m, k, 128, s + u, v, t)
    for i in range(n8, n):
        v = popcount(words[2 * i] ^ q0) + popcount(words[2 * i + 1] ^ q1)
        if v <= t:
            m, t = keep(ids, dist, m, k, 128, i, v, t)
    m, t = shrink(ids, dist, m, min(k, m), 128)
    sort_kept(ids, dist, m, 128, out_d, out_i)


@jit
def scan(words, q, k, ids, dist, out_d, out_i):
    """The k nearest codes to one query (uint64 words), sorted (distance, row) into out."""
    if q.shape[0] == 2:
        scan_2words(words, q[0], q[1], k, ids, dist, out_d, out_i)
    else:
        scan_one(words, q, q.shape[0], k, ids, dist, out_d, out_i)


@jit
def buffers(k):
    """The scan's candidate buffer: room for k kept plus as many new before each shrink."""
    cap = max(2 * k, 512)
    return np.empty(cap, np.int64), np.empty(cap, np.int64)


@jit
def knn(words, queries, k, out_d, out_i):
    ids, dist = buffers(k)
    for r in range(queries.shape[0]):
        scan(words, queries[r], k, ids, dist, out_d[r], out_i[r])


# 2 ** (e - 25) for each float16 exponent e: a normal half is (1024 + mantissa) * 2 ** (e - 25).
_HALF_SCALE = np.array([2.0 ** (e - 25) for e in range(32)], dtype=np.float32)


@jit
def half_to_float(h):
    """The float32 value of a float16 given by its bits (uint16): exact, as numpy's astype."""
    bits = np.int32(h)
    mantissa = bits & 0x3FF
    exponent = (bits >> 10) & 0x1F
    if exponent == 0:  # zero or subnormal: mantissa * 2 ** -24
        value = np.float32(mantissa) * np.float32(5.960464477539063e-08)
    elif exponent == 31:
        value = np.float32(np.inf) if mantissa == 0 else np.float32(np.nan)
    else:
        value = np.float32(1024 + mantissa) * _HALF_SCALE[exponent]
    return -value if bits & 0x8000 else value


def dot(targets, row, query):
    """float32 inner product of one rerank row with the query (compiled by the overload below)."""
    raise NotImplementedError


@overload(dot, jit_options={"fastmath": True})
def _dot(targets, row, query):
    """float32 / int8 rows are cast; uint16 rows are float16 bits (numba has no float16 type)."""
    if targets.dtype == types.uint16:

        def dot_half(targets, row, query):
            total = np.float32(0.0)
            for d in range(query.shape[0]):
                total += half_to_float(targets[row, d]) * query[d]
            return total

        return dot_half

    def dot_cast(targets, row, query):
        total = np.float32(0.0)
        for d in range(query.shape[0]):
            total += np.float32(targets[row, d]) * query[d]
        return total

    return dot_cast


@jit
def is_excluded(sorted_rows, lo, end, row):
    """Binary search of row in sorted_rows[lo:end]."""
    hi = end
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_rows[mid] < row:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and sorted_rows[lo] == row


@jit
def two_stage(words, queries, fetch, n_candidates, ex_ptr, ex_rows, targets, vectors, k, out_i, out_s):
    ids, dist = buffers(fetch)
    hd = np.empty(fetch, np.int32)
    hi = np.empty(fetch, np.int64)
    cand = np.empty(n_candidates, np.int64)
    scores = np.empty(n_candidates, np.float32)
    for r in range(queries.shape[0]):
        scan(words, queries[r], fetch, ids, dist, hd, hi)
        lo, end = ex_ptr[r], ex_ptr[r + 1]
        kept = 0
        for j in range(fetch):  # Hamming order: the first n_candidates rows not excluded
            row = hi[j]
            if is_excluded(ex_rows, lo, end, row):
                continue
            cand[kept] = row
            kept += 1
            if kept == n_candidates:
                break
        for j in range(kept):
            scores[j] = dot(targets, cand[j], vectors[r])
        order = np.argsort(-scores[:kept], kind="mergesort")  # stable: ties by Hamming position
        top = min(k, kept)
        for j in range(top):
            out_i[r, j] = cand[order[j]]
            out_s[r, j] = scores[order[j]]
        for j in range(top, k):
            out_i[r, j] = -1
            out_s[r, j] = -np.inf
