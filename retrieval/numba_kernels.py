"""The numba kernels behind ``retrieval.kernels`` (imported only when numba is installed).

Module-level functions, so numba's on-disk cache (``cache=True``) finds them again in the next
process: a worker loads the compiled code instead of compiling it again.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def popcount(typingctx: Any, x: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


@intrinsic
def lowest_set_bit(typingctx: Any, x: Any) -> Any:
    """Index of the lowest set bit of a nonzero uint64."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.intp(types.uint64), codegen


@intrinsic
def at_most_mask(typingctx: Any, d: Any, start: Any, t: Any) -> Any:
    """Bit j set where ``d[start + j] <= t``, j < 64 (0 <= t; start + 64 <= len(d)).

    One vector compare and a move-mask: a 64-bit mask of the codes that can enter, in the
    distances' own width. A summed comparison in numba widens every distance to 64 bits first.
    """
    if not (isinstance(d, types.Array) and d.layout == "C" and d.dtype in (types.uint8, types.uint16)):
        return None
    lane = ir.IntType(d.dtype.bitwidth)
    vector = ir.VectorType(lane, 64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array, first, threshold = args
        first = context.cast(builder, first, signature.args[1], types.intp)
        threshold = context.cast(builder, threshold, signature.args[2], types.int64)
        data = context.make_array(signature.args[0])(context, builder, array).data
        pointer = builder.bitcast(builder.gep(data, [first]), vector.as_pointer())
        values = builder.load(pointer, align=1)
        lane0 = builder.insert_element(
            ir.Constant(vector, None), builder.trunc(threshold, lane), ir.Constant(ir.IntType(32), 0)
        )
        splat = builder.shuffle_vector(
            lane0, ir.Constant(vector, None), ir.Constant(ir.VectorType(ir.IntType(32), 64), [0] * 64)
        )
        return builder.bitcast(builder.icmp_unsigned("<=", values, splat), ir.IntType(64))

    return types.uint64(d, start, t), codegen


jit = numba.njit(boundscheck=False, nogil=True, cache=True)  # compiled code cached on disk


@jit
def tail_mask(d, s, t):
    """at_most_mask for the last, partial block: bit j set where d[s + j] <= t, s + j < len(d)."""
    mask = np.uint64(0)
    for j in range(d.shape[0] - s):
        if d[s + j] <= t:
            mask |= np.uint64(1) << np.uint64(j)
    return mask


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


@intrinsic
def prefetch(typingctx: Any, words: Any, first: Any) -> Any:
    """Ask the CPU to start loading the cache line that holds ``words[first]`` (a hint, no fault)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        )
        # read, keep in every cache level, data cache
        builder.call(function, [address, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(words, types.intp), codegen


@jit
def prefetch_block(words, first, count, ahead):
    """Prefetch ``words[first + ahead:][:count]`` (count a multiple of 8, one hint per line) if
    inside; nothing when ahead is 0."""
    start = first + ahead
    if ahead > 0 and start + count <= words.shape[0]:
        for line in range(start, start + count, 8):
            prefetch(words, line)


@jit
def distances(words, q, d, ahead):
    """Hamming distance to query q of the first len(d) codes in words, into d.

    Branch-free blocks of 64 codes, so LLVM vectorizes them; before each block the codes
    ``ahead`` words further on are prefetched, if ahead > 0 (words may run on past len(d) codes:
    the next chunk is prefetched too).
    """
    n = d.shape[0]
    w = q.shape[0]
    n64 = n - n % 64
    if w == 1:
        q0 = q[0]
        for b in range(0, n64, 64):
            prefetch_block(words, b, 64, ahead)
            for i in range(b, b + 64):
                d[i] = popcount(words[i] ^ q0)
        for i in range(n64, n):
            d[i] = popcount(words[i] ^ q0)
    elif w == 2:
        q0, q1 = q[0], q[1]
        for b in range(0, n64, 64):
            prefetch_block(words, 2 * b, 128, ahead)
            for i in range(b, b + 64):
                d[i] = popcount(words[2 * i] ^ q0) + popcount(words[2 * i + 1] ^ q1)
        for i in range(n64, n):
            d[i] = popcount(words[2 * i] ^ q0) + popcount(words[2 * i + 1] ^ q1)
    elif w == 4:
        q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
        for b in range(0, n64, 64):
            prefetch_block(words, 4 * b, 256, ahead)
            for i in range(b, b + 64):
                d[i] = distance4(words, 4 * i, q0, q1, q2, q3)
        for i in range(n64, n):
            d[i] = distance4(words, 4 * i, q0, q1, q2, q3)
    else:
        for i in range(n):
            v = np.uint64(0)
            for j in range(w):
                v += popcount(words[i * w + j] ^ q[j])
            d[i] = v


@jit
def distance4(words, b, q0, q1, q2, q3):
    """Hamming distance of the 256-bit code at words[b:b + 4]."""
    return (
        popcount(words[b] ^ q0)
        + popcount(words[b + 1] ^ q1)
        + popcount(words[b + 2] ^ q2)
        + popcount(words[b + 3] ^ q3)
    )


@jit
def count_at_most(d, t):
    """How many distances are <= t (0 <= t)."""
    n64 = d.shape[0] - d.shape[0] % 64
    c = 0
    for s in range(0, n64, 64):
        c += popcount(at_most_mask(d, s, t))
    return c + popcount(tail_mask(d, n64, t))


@jit
def kth_distance(d, k, bits):
    """(t, below): the k-th smallest distance in d and how many distances are below it.

    A histogram of a sample guesses t; exact counts then gallop out from the guess (it is
    usually off by a step or two) until t is bracketed, and bisect the bracket.
    """
    n = d.shape[0]
    stride = max(1, n // 4096)
    hist = np.zeros(bits + 1, np.int64)
    for i in range(0, n, stride):
        hist[d[i]] += 1
    t = 0
    sampled = 0
    for t in range(bits + 1):
        sampled += hist[t] * stride
        if sampled >= k:
            break
    lo, hi, below = -1, bits, 0  # count(lo) = below < k <= count(hi); count(-1) = 0
    step = 1
    while hi - lo > 1:
        c = count_at_most(d, t)
        if c >= k:
            hi = t
            t -= step
        else:
            lo, below = t, c
            t += step
        step *= 2
        if not lo < t < hi:
            t = (lo + hi) // 2
    return hi, below


@jit
def collect_bits(d, s, mask, t, take, ids, dist, m):
    """Append the codes s + j of the mask's bits at distance < t, and the first ``take`` at t."""
    while mask:
        i = s + lowest_set_bit(mask)
        mask &= mask - np.uint64(1)
        v = d[i]
        if v < t or take > 0:
            take -= v == t
            ids[m] = i
            dist[m] = v
            m += 1
    return m, take


@jit
def keep_bits(d, s, mask, offset, k, bits, t, ids, dist, m):
    """keep() the codes s + j of the mask's bits (rows numbered from ``offset``) still within t,
    which can drop on the way."""
    while mask:
        i = s + lowest_set_bit(mask)
        mask &= mask - np.uint64(1)
        if d[i] <= t:
            m, t = keep(ids, dist, m, k, bits, offset + i, d[i], t)
    return m, t


@jit
def take_first_k(d, k, bits, ids, dist):
    """The k smallest (distance, row) of d into the kept buffer, in row order; returns t, their worst."""
    t, below = kth_distance(d, k, bits)
    take = k - below  # codes at distance t kept: the first ones in row order
    n64 = d.shape[0] - d.shape[0] % 64
    m = 0
    for s in range(0, n64, 64):
        mask = at_most_mask(d, s, t)
        if mask:
            m, take = collect_bits(d, s, mask, t, take, ids, dist, m)
    collect_bits(d, n64, tail_mask(d, n64, t), t, take, ids, dist, m)
    return t


@jit
def scan(words, q, k, d, ids, dist, out_d, out_i, ahead):
    """The k nearest codes to one query (uint64 words), sorted (distance, row) into out.

    The catalogue is scanned in chunks of len(d) codes (>= k), so the distance buffer stays in
    cache: each chunk's distances in one vectorized pass, then a vectorized test per 64 codes
    skips those that cannot enter. The first chunk's k best are found by counting; after that a
    code enters only below the running threshold t, and the kept buffer is shrunk to the k best
    (lowering t) whenever it fills. ``ahead``: prefetch distance in words, 0 for none.
    """
    w = q.shape[0]
    n = words.shape[0] // w
    bits = w * 64
    chunk = d.shape[0]
    distances(words, q, d, ahead)
    m = k
    t = take_first_k(d, k, bits, ids, dist) - 1  # later rows lose ties to the kept ones
    for c0 in range(chunk, n, chunk):
        size = min(chunk, n - c0)
        dc = d[:size]
        distances(words[c0 * w :], q, dc, ahead)  # the codes past this chunk are prefetched
        n64 = size - size % 64
        for s in range(0, n64, 64):
            if t < 0:
                break
            mask = at_most_mask(dc, s, t)
            if mask:
                m, t = keep_bits(dc, s, mask, c0, k, bits, t, ids, dist, m)
        if t >= 0:
            m, t = keep_bits(dc, n64, tail_mask(dc, n64, t), c0, k, bits, t, ids, dist, m)
    m, t = shrink(ids, dist, m, k, bits)
    sort_kept(ids, dist, m, bits, out_d, out_i)


@jit
def buffers(k):
    """The scan's candidate buffer: room for k kept plus as many new before each shrink."""
    cap = max(2 * k, 512)
    return np.empty(cap, np.int64), np.empty(cap, np.int64)


@jit
def knn(words, queries, k, d, out_d, out_i, ahead):
    ids, dist = buffers(k)
    for r in range(queries.shape[0]):
        scan(words, queries[r], k, d, ids, dist, out_d[r], out_i[r], ahead)


@intrinsic
def float_from_bits(typingctx: Any, bits: Any) -> Any:
    """The float32 whose bit pattern is the low 32 bits of an integer."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        low = context.cast(builder, args[0], signature.args[0], types.uint32)
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def bits_of_float(typingctx: Any, value: Any) -> Any:
    """The bit pattern (uint32) of a float32."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(types.float32), codegen


@jit
def half_to_float(h):
    """The float32 value of a float16 given by its bits (uint16): exact, as numpy's astype.

    Branch-free, so the rerank loop that calls it vectorizes: the half's exponent and mantissa
    shifted into float32 position, times 2 ** 112 to move the exponent bias from 15 to 127 (which
    also normalizes subnormal halves), infinities and NaNs restored, then the sign.
    """
    bits = np.uint32(h)
    value = float_from_bits((bits & 0x7FFF) << 13) * np.float32(2.0**112)
    out = bits_of_float(value)
    if value >= np.float32(65536.0):  # exponent 31: infinity or NaN
        out |= 0x7F800000
    return float_from_bits(out | ((bits & 0x8000) << 16))


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
def insert_top(top_i, top_s, size, row, score):
    """Insert (row, score) into the descending top list of ``size`` entries (capacity len(top_i));
    an equal score goes after those already there, so ties stay in candidate (Hamming) order.
    Returns the new size."""
    k = top_i.shape[0]
    if size == k and not score > top_s[k - 1]:
        return size
    j = min(size, k - 1)
    while j > 0 and top_s[j - 1] < score:
        top_i[j] = top_i[j - 1]
        top_s[j] = top_s[j - 1]
        j -= 1
    top_i[j] = row
    top_s[j] = score
    return min(size + 1, k)


@jit
def rerank_one(words, q, query, targets, ex_rows, lo, end, d, scratch, top_i, top_s, ahead):
    """One query's two-stage answer into top_i / top_s (capacity k, descending); returns how many.

    The Hamming top-``fetch`` (the scratch's size) of code q, the first ``n_candidates`` of them
    not in ``ex_rows[lo:end]`` (sorted), each scored by ``dot`` with query and kept in the top
    list; the rest is padded -1 / -inf.
    """
    ids, dist, hd, hi, cand = scratch
    fetch, n_candidates = hi.shape[0], cand.shape[0]
    scan(words, q, fetch, d, ids, dist, hd, hi, ahead)
    kept = 0
    for j in range(fetch):  # Hamming order: the first n_candidates rows not excluded
        row = hi[j]
        if is_excluded(ex_rows, lo, end, row):
            continue
        cand[kept] = row
        kept += 1
        if kept == n_candidates:
            break
    top = 0
    for j in range(kept):
        top = insert_top(top_i, top_s, top, cand[j], dot(targets, cand[j], query))
    for j in range(top, top_i.shape[0]):
        top_i[j] = -1
        top_s[j] = -np.inf
    return top


@jit
def rerank_scratch(fetch, n_candidates):
    """Buffers of rerank_one for a Hamming top-fetch: the scan's kept buffer, its sorted output
    (distances, rows) and the candidates."""
    ids, dist = buffers(fetch)
    return ids, dist, np.empty(fetch, np.int32), np.empty(fetch, np.int64), np.empty(n_candidates, np.int64)


@jit
def two_stage(words, queries, fetch, n_candidates, ex_ptr, ex_rows, targets, vectors, d, out_i, out_s, ahead):
    scratch = rerank_scratch(fetch, n_candidates)
    for r in range(queries.shape[0]):
        lo, end = ex_ptr[r], ex_ptr[r + 1]
        top_i, top_s = out_i[r], out_s[r]
        rerank_one(words, queries[r], vectors[r], targets, ex_rows, lo, end, d, scratch, top_i, top_s, ahead)


@jit
def merged(seen, lo, end, extra):
    """``seen[lo:end]`` and ``extra``, both sorted, as one sorted int64 array."""
    a, b = end - lo, extra.shape[0]
    out = np.empty(a + b, np.int64)
    i = j = 0
    for p in range(a + b):
        if j >= b or (i < a and seen[lo + i] <= extra[j]):
            out[p] = seen[lo + i]
            i += 1
        else:
            out[p] = extra[j]
            j += 1
    return out


@jit
def two_stage_query(words, code, query, targets, excluded, k, n_candidates, chunk, ahead):
    """One query's answer: Hamming top-C of ``code`` (uint64 words) not in the sorted
    ``excluded`` rows, reranked by ``query`` (already scaled); the valid (rows, scores) only."""
    n = words.shape[0] // code.shape[0]
    fetch = min(n, n_candidates + excluded.shape[0])
    top_i = np.empty(k, np.int64)
    top_s = np.empty(k, np.float32)
    top = 0
    if fetch > 0 and n_candidates > 0:
        scratch = rerank_scratch(fetch, n_candidates)
        size = min(n, max(chunk, fetch))
        m = excluded.shape[0]
        if code.shape[0] < 4:  # distances below 256 fit in uint8
            d8 = np.empty(size, np.uint8)
            top = rerank_one(words, code, query, targets, excluded, 0, m, d8, scratch, top_i, top_s, ahead)
        else:
            d16 = np.empty(size, np.uint16)
            top = rerank_one(words, code, query, targets, excluded, 0, m, d16, scratch, top_i, top_s, ahead)
    return top_i[:top], top_s[:top]


@jit
def two_stage_user(
    words, codes, vectors, scale, seen_ptr, seen, targets, row, k, n_candidates, chunk, skip, extra, ahead
):
    """User ``row``'s answer, skipping its ``seen`` rows (sorted CSR) if ``skip`` and the sorted
    ``extra`` rows: (rows, scores).

    ``codes`` and ``vectors`` are every user's (uint64 words, float32); ``two_stage``'s other
    inputs are read here from these arrays, so a request makes one compiled call. Only the
    valid entries are returned.
    """
    lo = seen_ptr[row]
    excluded = merged(seen, lo, seen_ptr[row + 1] if skip else lo, extra)
    return two_stage_query(
        words, codes[row], vectors[row] * scale, targets, excluded, k, n_candidates, chunk, ahead
    )


@numba.njit(cache=True, nogil=True)
def walk_candidate_scores(
    item_indptr: np.ndarray,
    item_indices: np.ndarray,
    history: np.ndarray,
    history_weight: np.ndarray,
    user_weight: np.ndarray,
    item_weight: np.ndarray,
    candidates: np.ndarray,
    mass: np.ndarray,
) -> np.ndarray:
    """Walk scores of ``candidates`` for ``history`` (``retrieval.walk``); ``mass`` is a float64
    scratch of one zero per user, left all zero again."""
    for h in history:
        weight = history_weight[h]
        for p in range(item_indptr[h], item_indptr[h + 1]):
            mass[item_indices[p]] += weight
    out = np.empty(len(candidates), np.float32)
    for n in range(len(candidates)):
        item = candidates[n]
        total = 0.0
        for p in range(item_indptr[item], item_indptr[item + 1]):
            user = item_indices[p]
            total += mass[user] * user_weight[user]
        out[n] = total * item_weight[item]
    for h in history:
        for p in range(item_indptr[h], item_indptr[h + 1]):
            mass[item_indices[p]] = 0.0
    return out
