"""The fast serving paths answer exactly (or, where approximate, within a stated recall) what the
plain ones do: the vectorized Hamming scan equals faiss, the vectorized exclusion equals a per-row
loop, batched answers equal unbatched ones, float16 rerank and binary IVF keep their recall."""

from __future__ import annotations

import itertools

import faiss
import numpy as np
import pytest
from hashrec.model_store import ModelStore
from hashrec.retrieval.kernels import (
    PREFETCH_BYTES,
    SCAN_CHUNK_ITEMS,
    default_prefetch_bytes,
    prefetch_words,
    two_stage_kernel,
    two_stage_user_kernel,
)
from hashrec.retrieval.model import (
    ServingModel,
    build_binary_index,
    flat_recall,
    hamming_knn_kernel,
    quantize_int8,
    rows_sorted,
    tune_nprobe,
)
from hashrec.retrieval.recommender import Recommender
from hashrec.retrieval.schema import ITEM_INDEX_FILE
from hashrec.retrieval.search import (
    ExactSearcher,
    FusedSearcher,
    NumpySearcher,
    SearchResult,
    hamming_candidates,
    sorted_exclusions,
    two_stage_searcher,
)

from tests.conftest import planted_arrays

numba = pytest.importorskip("numba")


def clustered_codes(n: int, n_bytes: int, seed: int, flip: float = 0.1) -> np.ndarray:
    """Codes near a few centres: many equal distances, so tie order is exercised."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 256, (6, n_bytes), dtype=np.uint8)
    bits = np.unpackbits(centres[rng.integers(0, 6, n)], axis=1)
    return np.packbits(bits ^ (rng.random(bits.shape) < flip), axis=1)


# The scan works in chunks of SCAN_CHUNK_ITEMS codes (the first chunk's k best by counting, later
# ones against a running threshold); chunk=1000 runs the many-chunk path on small data.
SCANS = pytest.mark.parametrize("chunk", [SCAN_CHUNK_ITEMS, 1000], ids=["one-chunk", "many-chunks"])


@SCANS
@pytest.mark.parametrize("n_bytes", [8, 16, 24, 32, 64])
@pytest.mark.parametrize("n", [1, 7, 1003, 20_011])
@pytest.mark.parametrize("k", [1, 10, 200, 5000])
def test_vectorized_scan_equals_faiss_exactly(n_bytes, n, k, chunk):
    codes = clustered_codes(n, n_bytes, seed=n + k)
    queries = np.vstack([clustered_codes(5, n_bytes, seed=99), codes[: min(n, 3)]])
    flat = faiss.IndexBinaryFlat(n_bytes * 8)
    flat.add(codes)
    k = min(k, n)
    expected_d, expected_i = flat.search(queries, k)
    got_d, got_i = hamming_knn_kernel(codes.view(np.uint64).ravel(), queries, k, chunk)
    assert np.array_equal(got_i, expected_i)
    assert np.array_equal(got_d, expected_d)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_threshold_masks_count_what_numpy_counts(dtype):
    """The scan's 64-code vector masks (and the scalar one of a last partial block) at every
    threshold from 0 to the largest distance its buffer can hold."""
    from hashrec.retrieval.numba_kernels import count_at_most

    top = int(np.iinfo(dtype).max)
    distances = np.random.default_rng(3).integers(0, top + 1, 64 * 5 + 37).astype(dtype)
    for t in sorted({0, 1, 2, 127, 128, 200, 255, top - 1, top}):
        for n in (0, 37, 64, 64 * 5 + 37):
            assert count_at_most(distances[:n], t) == int((distances[:n] <= t).sum()), (t, n)


@pytest.mark.parametrize("ahead", [0, 8, 256])
@pytest.mark.parametrize("words_per_code", [1, 2, 3, 4])
def test_the_distance_loop_reads_only_its_own_codes(words_per_code, ahead):
    """Distances of the first len(d) codes while the words run on (the next chunk, prefetched),
    for every block and tail length, equal numpy's popcounts."""
    from hashrec.retrieval.numba_kernels import distances

    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (64 * 9 + 21, 8 * words_per_code), dtype=np.uint8)
    words = codes.view(np.uint64).ravel()
    query = codes[7]
    expected = np.unpackbits(codes ^ query, axis=1).sum(axis=1)
    for n in (0, 1, 63, 64, 64 * 4 + 5, len(codes)):
        for start in (0, 64 * 3 + 1):
            m = min(n, len(codes) - start)
            got = np.empty(m, np.uint8)
            distances(words[start * words_per_code :], query.view(np.uint64), got, ahead)
            assert np.array_equal(got, expected[start : start + m]), (n, start)


@pytest.mark.parametrize("prefetch_bytes", [0, 2048, None])
@SCANS
def test_the_kernel_buffer_shrinks_many_times(chunk, prefetch_bytes):
    """k small against a large catalogue with heavy ties: the running threshold shrinks the kept
    buffer many times, and the first chunk's k-th distance has many ties."""
    codes = clustered_codes(200_003, 16, seed=3, flip=0.02)
    queries = codes[[0, 17, 99_999]]
    flat = faiss.IndexBinaryFlat(128)
    flat.add(codes)
    for k in (1, 33, 2048):
        expected_d, expected_i = flat.search(queries, k)
        got_d, got_i = hamming_knn_kernel(codes.view(np.uint64).ravel(), queries, k, chunk, prefetch_bytes)
        assert np.array_equal(got_i, expected_i) and np.array_equal(got_d, expected_d)


@pytest.mark.parametrize(
    "vendor, family, model, expected",
    [
        ("GenuineIntel", 6, 167, PREFETCH_BYTES),  # measured: faster
        ("AuthenticAMD", 25, 1, PREFETCH_BYTES),  # Zen 3, measured: faster
        ("AuthenticAMD", 23, 49, PREFETCH_BYTES),  # Zen 2, like Zen 3 (unmeasured)
        ("AuthenticAMD", 25, 17, 0),  # Zen 4, measured: slower
        ("AuthenticAMD", 26, 2, 0),  # Zen 5, like Zen 4 (unmeasured)
        ("HygonGenuine", 24, 1, 0),
        (None, None, None, 0),
    ],
)
def test_the_scan_prefetches_by_default_except_on_amd_zen_4(tmp_path, vendor, family, model, expected):
    cpuinfo = tmp_path / "cpuinfo"
    if vendor is not None:
        block = f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
        other = "processor\t: 1\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 167\n"
        cpuinfo.write_text(block + "\n" + other)  # the first CPU's block decides
    assert default_prefetch_bytes(cpuinfo) == expected


def test_an_unreadable_cpu_family_turns_the_prefetch_off(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("vendor_id\t: GenuineIntel\ncpu family\t: six\nmodel\t\t: 1\n")
    assert default_prefetch_bytes(cpuinfo) == 0


def test_prefetch_distances_are_whole_cache_lines():
    assert prefetch_words(0) == 0 and prefetch_words(2048) == 256 and prefetch_words(100) == 8
    assert prefetch_words(None) == default_prefetch_bytes() // 8
    with pytest.raises(ValueError, match="prefetch_bytes"):
        prefetch_words(-64)
    with pytest.raises(ValueError, match="scan_prefetch_bytes"):
        ServingModel.from_arrays("bad", planted_arrays(), scan_prefetch_bytes=-1)


def test_served_answers_do_not_depend_on_the_prefetch(kernel_and_faiss):
    arrays = kernel_and_faiss[0].arrays
    answers = []
    for prefetch_bytes in (0, 64, 2048):
        model = ServingModel.from_arrays(
            "p", arrays, hamming_kernel="numba", scan_prefetch_bytes=prefetch_bytes
        )
        searcher = two_stage_searcher(model, candidates=100)
        batched = searcher.search_users(np.arange(30), 20)
        single = [searcher.search_user(u, 20) for u in range(30)]
        answers.append((batched.items, batched.scores, single))
    for items, scores, single in answers[1:]:
        assert np.array_equal(items, answers[0][0]) and np.array_equal(scores, answers[0][1])
        for (rows, values), (rows0, values0) in zip(single, answers[0][2], strict=True):  # type: ignore[misc]
            assert np.array_equal(rows, rows0) and np.array_equal(values, values0)


def assert_same_ranking(a, b, tol: float = 1e-5) -> None:
    """Equal answers up to float32 rounding: scores close, and items equal except where a
    near-tie (scores within tol) lets rounding order them differently, or at the last place,
    where the next item, not shown, may be the near-tied one."""
    np.testing.assert_allclose(a.scores, b.scores, rtol=tol, atol=tol)
    for row, differ in enumerate(a.items != b.items):
        scores = b.scores[row]
        for j in np.flatnonzero(differ):
            neighbours = scores[max(j - 1, 0) : j + 2]
            tied = np.isclose(neighbours, scores[j], rtol=tol, atol=tol).sum() > 1
            assert tied or j == len(scores) - 1, f"row {row}, place {j}: {a.items[row]} != {b.items[row]}"
        assert len(set(a.items[row]) ^ set(b.items[row])) <= 2  # only the last place brings another


@pytest.fixture(params=[64, 128, 256])
def kernel_and_faiss(request):
    arrays = planted_arrays(n_users=200, n_items=3000, bits=request.param, seed=request.param)
    fast = ServingModel.from_arrays("fast", arrays, hamming_kernel="numba")
    plain = ServingModel.from_arrays("plain", arrays, hamming_kernel="faiss")
    assert fast.scan == "numba" and plain.scan == "faiss"
    return fast, plain


def test_served_answers_do_not_depend_on_the_scan(kernel_and_faiss):
    """The fused numba search answers what faiss + numpy do; scores up to float32 rounding
    (the kernel sums the inner product in its own order)."""
    fast, plain = kernel_and_faiss
    users = np.arange(fast.n_users)
    a = two_stage_searcher(fast, candidates=100).search_users(users, 20)
    b = two_stage_searcher(plain, candidates=100).search_users(users, 20)
    assert_same_ranking(a, b)


@pytest.mark.parametrize("rerank_dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("k, candidates", [(1, 1), (20, 50), (20, 600), (50, 3000)])
def test_the_fused_search_equals_the_numpy_path(kernel_and_faiss, rerank_dtype, k, candidates):
    """Exclusions of every shape, more candidates than the catalogue holds, every rerank dtype."""
    arrays = kernel_and_faiss[0].arrays
    fused = ServingModel.from_arrays("fused", arrays, hamming_kernel="numba", rerank_dtype=rerank_dtype)
    numpy_path = ServingModel.from_arrays("numpy", arrays, hamming_kernel="faiss", rerank_dtype=rerank_dtype)
    rng = np.random.default_rng(k + candidates)
    users = np.arange(40)
    exclude = [fused.seen(int(u)) for u in users]
    exclude[1] = np.empty(0, np.int64)
    exclude[2] = rng.integers(0, fused.n_items, 700)  # duplicates, unsorted
    exclude[3] = np.arange(fused.n_items)[::-1]  # everything: no candidate left
    exclude[4] = np.arange(0, fused.n_items, 2)
    vectors = np.asarray(fused.user_embeddings[users], dtype=np.float32)
    codes = np.asarray(fused.user_codes[users])
    for rows in (users, users[2:3], users[3:4]):  # a batch and single queries
        a = two_stage_searcher(fused).search(
            vectors[rows], codes[rows], k, exclude=[exclude[r] for r in rows], candidates=candidates
        )
        b = two_stage_searcher(numpy_path).search(
            vectors[rows], codes[rows], k, exclude=[exclude[r] for r in rows], candidates=candidates
        )
        assert_same_ranking(a, b)
    assert (a.items == -1).all() and np.isneginf(a.scores).all()


def test_the_fused_search_does_not_depend_on_the_chunk(kernel_and_faiss):
    """The fused kernel gives the same rows and scores scanning in one chunk or in many."""
    fast = kernel_and_faiss[0]
    users = np.arange(50)
    ptr, rows = sorted_exclusions([fast.seen(int(u)) for u in users], len(users), fast.n_items)
    query = np.asarray(fast.user_embeddings[users], dtype=np.float32)
    codes = np.asarray(fast.user_codes[users])
    args = (fast.scan_words, codes, query, fast.rerank_items, 20, 150, ptr, rows)
    one = two_stage_kernel(*args)
    many = two_stage_kernel(*args, chunk=300)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])
    assert (one[0] >= 0).all()


def with_seen(arrays: dict[str, np.ndarray], seen: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays with the given users' seen rows replaced (CSR rebuilt, rows as given)."""
    ptr, rows = arrays["seen_indptr"], arrays["seen_indices"]
    lists = [seen.get(u, rows[ptr[u] : ptr[u + 1]]) for u in range(len(ptr) - 1)]
    lengths = np.array([len(x) for x in lists], np.int64)
    out = dict(arrays)
    out["seen_indptr"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    out["seen_indices"] = np.concatenate(lists).astype(np.int32)
    return out


@pytest.mark.parametrize("rerank_dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("k, candidates", [(1, 1), (20, None), (20, 600), (50, 3000)])
def test_the_single_user_kernel_equals_the_numpy_path(kernel_and_faiss, rerank_dtype, k, candidates):
    """One known user in one compiled call answers what faiss + numpy do for that user, with and
    without the seen rows and extra excluded items (unsorted, repeated, some also seen), for users
    who saw nothing, half the catalogue or all of it."""
    n_items = kernel_and_faiss[0].n_items
    arrays = with_seen(
        kernel_and_faiss[0].arrays,
        {0: np.arange(n_items), 1: np.empty(0, np.int32), 2: np.arange(0, n_items, 2)},
    )
    fast = ServingModel.from_arrays("fast", arrays, hamming_kernel="numba", rerank_dtype=rerank_dtype)
    plain = ServingModel.from_arrays("plain", arrays, hamming_kernel="faiss", rerank_dtype=rerank_dtype)
    assert rows_sorted(fast.seen_indptr, fast.seen_indices)
    rng = np.random.default_rng(k)
    for user, exclude_seen in itertools.product(range(30), (True, False)):
        extra = rng.integers(0, n_items, 60) if user % 3 else None
        if extra is not None:
            extra[:3] = plain.seen(user)[:3] if len(plain.seen(user)) >= 3 else extra[:3]
        found = two_stage_searcher(fast).search_user(
            user, k, exclude_seen=exclude_seen, exclude_items=extra, candidates=candidates
        )
        rows, scores = found
        padded = SearchResult(
            np.concatenate([rows, np.full(k - len(rows), -1)])[None],
            np.concatenate([scores, np.full(k - len(rows), -np.inf, np.float32)])[None],
        )
        excluded = [plain.seen(user)] if exclude_seen else []
        excluded += [extra] if extra is not None else []
        exclude = [np.concatenate(excluded)] if excluded else None
        expected = two_stage_searcher(plain).search(
            plain.user_embeddings[[user]], plain.user_codes[[user]], k, exclude=exclude, candidates=candidates
        )
        assert len(rows) == (expected.items[0] >= 0).sum()
        assert_same_ranking(padded, expected)
    assert len(two_stage_searcher(fast).search_user(0, k)[0]) == 0


@pytest.mark.parametrize("rerank_dtype", ["float32", "float16", "int8"])
@pytest.mark.parametrize("k, candidates", [(1, 1), (20, None), (50, 3000)])
def test_the_single_query_kernel_equals_the_numpy_path(kernel_and_faiss, rerank_dtype, k, candidates):
    """A query given by its own vector and code (a visitor's) in one compiled call answers what
    faiss + numpy do, with no exclusions, unsorted repeated ones, or the whole catalogue."""
    arrays = kernel_and_faiss[0].arrays
    fast = ServingModel.from_arrays("fast", arrays, hamming_kernel="numba", rerank_dtype=rerank_dtype)
    plain = ServingModel.from_arrays("plain", arrays, hamming_kernel="faiss", rerank_dtype=rerank_dtype)
    rng = np.random.default_rng(k)
    vectors = rng.standard_normal((12, fast.item_embeddings.shape[1])).astype(np.float32)
    codes = plain.user_codes[rng.integers(0, plain.user_codes.shape[0], 12)]
    for i in range(12):
        exclude = [None, rng.integers(0, fast.n_items, 80), np.arange(fast.n_items)[::-1]][i % 3]
        found = two_stage_searcher(fast).search_query(
            vectors[i], codes[i], k, exclude=exclude, candidates=candidates
        )
        rows, scores = found
        padded = SearchResult(
            np.concatenate([rows, np.full(k - len(rows), -1)])[None],
            np.concatenate([scores, np.full(k - len(rows), -np.inf, np.float32)])[None],
        )
        expected = two_stage_searcher(plain).search(
            vectors[[i]], codes[[i]], k, exclude=None if exclude is None else [exclude], candidates=candidates
        )
        assert len(rows) == (expected.items[0] >= 0).sum()
        assert_same_ranking(padded, expected)
        # the numpy searcher's own single-query answer is its batched one
        numpy_rows, numpy_scores = two_stage_searcher(plain).search_query(
            vectors[i], codes[i], k, exclude=exclude, candidates=candidates
        )
        valid = expected.items[0] >= 0
        assert np.array_equal(numpy_rows, expected.items[0][valid])
        assert np.array_equal(numpy_scores, expected.scores[0][valid])


def test_for_history_answers_the_same_through_the_kernel_and_faiss(model, arrays):
    """A visitor's answer through the single-query call equals the batched faiss + numpy one."""
    plain = ServingModel.from_arrays("faiss", arrays, hamming_kernel="faiss")
    fast_recommender = Recommender(model, two_stage_searcher(model))
    plain_recommender = Recommender(plain, two_stage_searcher(plain))
    rng = np.random.default_rng(5)
    for visitor, exclude_seen in itertools.product(range(10), (True, False)):
        history = rng.integers(0, model.n_items, 1 + visitor)
        extra = np.array([visitor, 7, 7]) if visitor % 2 else None
        fast = fast_recommender.for_history(history, 10, exclude_seen=exclude_seen, exclude_items=extra)
        slow = plain_recommender.for_history(history, 10, exclude_seen=exclude_seen, exclude_items=extra)
        assert [i for i, _ in fast] == [i for i, _ in slow]
        np.testing.assert_allclose([s for _, s in fast], [s for _, s in slow], rtol=1e-6)
        if exclude_seen:
            assert not {i for i, _ in fast} & set(model.item_labels(history))


def test_the_single_user_kernel_does_not_depend_on_the_chunk(kernel_and_faiss):
    fast = kernel_and_faiss[0]
    for user in range(20):
        one = two_stage_user_kernel(FusedSearcher(fast).arrays, user, 20, 150, True)
        many = two_stage_user_kernel(FusedSearcher(fast).arrays, user, 20, 150, True, chunk=300)
        assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1])


def test_for_user_answers_what_for_users_does(model, arrays):
    """The route's single-user call, through the kernel (also with seen rows unsorted, served
    from a sorted copy) and, faiss scanning, through the numpy searcher: the pairs of the batched
    search."""
    unsorted = with_seen(arrays, {3: model.seen(3)[::-1].copy()})
    models = [
        model,
        ServingModel.from_arrays("unsorted", unsorted),
        ServingModel.from_arrays("faiss", arrays, hamming_kernel="faiss"),
    ]
    assert rows_sorted(model.seen_indptr, model.seen_indices) and len(model.seen(3)) > 1
    assert not rows_sorted(models[1].seen_indptr, models[1].seen_indices)
    for served in models:
        recommender = Recommender(served, two_stage_searcher(served))
        fused = isinstance(recommender.searcher, FusedSearcher)
        assert fused == (served is not models[2]) and fused != isinstance(recommender.searcher, NumpySearcher)
        for user, exclude_seen in itertools.product(range(20), (True, False)):
            extra = np.array([user, 7, 7, 3 * user + 1]) if user % 2 else None
            single = recommender.for_user(user, 10, exclude_seen=exclude_seen, exclude_items=extra)
            batched = recommender.for_users(
                np.array([user]), 10, exclude_seen=exclude_seen, exclude_items=extra
            )[0]
            assert [i for i, _ in single] == [i for i, _ in batched]
            np.testing.assert_allclose([s for _, s in single], [s for _, s in batched], rtol=1e-6)


def test_rows_sorted_allows_a_drop_only_at_a_row_start():
    assert rows_sorted(np.array([0, 2, 2, 4]), np.array([3, 5, 1, 2]))
    assert rows_sorted(np.array([0]), np.array([], np.int32))
    assert not rows_sorted(np.array([0, 3]), np.array([1, 5, 4]))
    assert rows_sorted(np.array([0, 1, 3]), np.array([7, 2, 2]))  # 7 | 2 2
    assert not rows_sorted(np.array([0, 1, 3]), np.array([7, 3, 2]))


def loop_candidates(model, codes, n_candidates, exclude):
    """The former per-row implementation, kept as the reference."""
    extra = max((len(e) for e in exclude), default=0)
    fetch = min(model.n_items, n_candidates + extra)
    distances, items = model.binary_index.search(np.ascontiguousarray(codes), fetch)
    out_items = np.full((len(codes), n_candidates), -1, dtype=np.int64)
    out_dist = np.full((len(codes), n_candidates), np.iinfo(np.int32).max, dtype=np.int32)
    for row in range(len(codes)):
        keep = items[row] >= 0
        if len(exclude[row]):
            keep &= ~np.isin(items[row], exclude[row])
        kept = np.flatnonzero(keep)[:n_candidates]
        out_items[row, : len(kept)] = items[row, kept]
        out_dist[row, : len(kept)] = distances[row, kept]
    return out_items, out_dist


@pytest.mark.parametrize("n_candidates", [1, 50, 480, 600])
def test_vectorized_exclusion_equals_the_row_loop(kernel_and_faiss, n_candidates):
    fast, plain = kernel_and_faiss
    rng = np.random.default_rng(n_candidates)
    users = np.arange(60)
    # seen items, nothing, duplicates, unsorted extras and the whole catalogue for one user
    exclude = [fast.seen(int(u)) for u in users]
    exclude[3] = np.empty(0, np.int64)
    exclude[4] = rng.integers(0, fast.n_items, 400)
    exclude[5] = np.arange(fast.n_items)[::-1]
    codes = fast.user_codes[users]
    expected = loop_candidates(plain, codes, n_candidates, exclude)
    for model in (fast, plain):
        got = hamming_candidates(model, codes, n_candidates, exclude)
        assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert (expected[0][5] == -1).all()


def test_batched_answers_equal_unbatched(kernel_and_faiss):
    fast, _ = kernel_and_faiss
    searcher = two_stage_searcher(fast, oversample=10)
    users = np.arange(64)
    batched = searcher.search_users(users, 20)
    for row, user in enumerate(users):
        single = searcher.search_users(np.array([user]), 20)
        assert np.array_equal(single.items[0], batched.items[row])
        assert np.array_equal(single.scores[0], batched.scores[row])


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def test_float16_rerank_keeps_the_float32_ranking():
    """Stated bound: float16 rerank vectors keep >= 0.99 of the float32 two-stage top-20."""
    arrays = planted_arrays(n_users=300, n_items=4000, dim=32, bits=128, seed=5)
    f32 = ServingModel.from_arrays("f32", arrays)
    f16 = ServingModel.from_arrays("f16", arrays, rerank_dtype="float16")
    assert f16.rerank_items.dtype == np.float16 and f32.rerank_items.dtype == np.float32
    users = np.arange(f32.n_users)
    a = two_stage_searcher(f32, candidates=200).search_users(users, 20)
    b = two_stage_searcher(f16, candidates=200).search_users(users, 20)
    assert overlap(a.items, b.items) >= 0.99
    assert np.allclose(a.scores, b.scores, rtol=2e-2, atol=2e-2)
    seen_free = [not set(b.items[u]) & set(f16.seen(u).tolist()) for u in users]
    assert all(seen_free)


def test_int8_rerank_keeps_the_float32_ranking():
    """Stated bound: int8 rerank vectors (per-dimension scales) keep >= 0.98 of the float32 top-20."""
    arrays = planted_arrays(n_users=300, n_items=4000, dim=32, bits=128, seed=5)
    f32 = ServingModel.from_arrays("f32", arrays)
    i8 = ServingModel.from_arrays("i8", arrays, rerank_dtype="int8")
    assert i8.rerank_items.dtype == np.int8 and i8.rerank_scale is not None
    users = np.arange(f32.n_users)
    a = two_stage_searcher(f32, candidates=200).search_users(users, 20)
    b = two_stage_searcher(i8, candidates=200).search_users(users, 20)
    assert overlap(a.items, b.items) >= 0.98
    assert np.allclose(a.scores, b.scores, rtol=3e-2, atol=3e-2)


def test_quantize_int8_is_within_half_a_step():
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((500, 16)).astype(np.float32) * np.geomspace(5, 0.01, 16)
    vectors[:, 3] = 0.0  # an all-zero dimension keeps a usable scale
    codes, scales = quantize_int8(vectors)
    assert codes.dtype == np.int8 and scales.dtype == np.float32 and scales.shape == (16,)
    assert np.all(np.abs(codes.astype(np.float32) * scales - vectors) <= scales / 2 + 1e-6)
    assert np.abs(codes).max() == 127 and np.all(codes[:, 3] == 0)


@pytest.fixture(scope="module")
def ivf_arrays():
    return planted_arrays(n_users=400, n_items=30_000, dim=32, bits=128, seed=7)


def test_binary_ivf_recall_of_the_flat_top_c(ivf_arrays):
    """Tuned binary IVF returns >= 0.95 of the flat Hamming top-C (C = 200) on generated data."""
    codes, queries = ivf_arrays["item_codes"], ivf_arrays["user_codes"]
    index = build_binary_index(codes, "ivf", nlist=128)
    nprobe, recall = tune_nprobe(index, codes, queries[:200], k=200)
    assert recall >= 0.95 and index.nprobe == nprobe < 128
    assert flat_recall(index, codes, queries[200:], 200, nprobe) >= 0.95  # held-out queries
    assert build_binary_index(codes, "auto").__class__ is faiss.IndexBinaryFlat  # 30k: flat


def test_ivf_candidates_are_never_short(ivf_arrays):
    """With one probe the lists run short; the retry still delivers C non-seen candidates."""
    index = build_binary_index(ivf_arrays["item_codes"], "ivf", nlist=512, nprobe=1)
    model = ServingModel.from_arrays("ivf", ivf_arrays, binary_index=index)
    assert model.index_kind == "ivf" and model.scan == "faiss"
    users = np.arange(50)
    exclude = [model.seen(int(u)) for u in users]
    items, distances = hamming_candidates(model, model.user_codes[users], 1000, exclude)
    assert (items >= 0).all()
    for row in range(len(users)):
        assert len(set(items[row].tolist())) == 1000
        assert not set(items[row].tolist()) & set(exclude[row].tolist())
        assert (np.diff(distances[row]) >= 0).all()


def test_an_ivf_artifact_loads_and_serves(tmp_path, ivf_arrays):
    index = build_binary_index(ivf_arrays["item_codes"], "ivf", nlist=128, nprobe=32)
    store = ModelStore(tmp_path / "store")
    blob = faiss.serialize_index_binary(index).tobytes()
    version = store.publish(ivf_arrays, {ITEM_INDEX_FILE: blob}, bits=128)
    model = ServingModel.from_artifact(store.open(version))
    assert model.index_kind == "ivf" and model.binary_index.nprobe == 32
    users = np.arange(100)
    exact = ExactSearcher(model).search_users(users, 20).items
    served = two_stage_searcher(model, candidates=200).search_users(users, 20).items
    flat = ServingModel.from_arrays("flat", ivf_arrays)
    served_flat = two_stage_searcher(flat, candidates=200).search_users(users, 20).items
    assert overlap(exact, served) >= overlap(exact, served_flat) - 0.02


def test_the_indexer_chooses_and_records_the_index(ivf_arrays):
    from hashrec.indexer.config import IndexConfig, ServingConfig
    from hashrec.indexer.pipeline import item_index

    flat, info = item_index(
        ivf_arrays, IndexConfig(), ivf_arrays["user_codes"]
    )  # 30k items: below the IVF threshold
    assert info == {"kind": "flat"} and isinstance(flat, faiss.IndexBinaryFlat)
    cfg = IndexConfig(serving=ServingConfig(binary_index="ivf", candidates=200))
    ivf, info = item_index(ivf_arrays, cfg, ivf_arrays["user_codes"])
    assert info["kind"] == "ivf" and info["nprobe"] == ivf.nprobe
    assert info["recall_of_flat_top_c"] >= 0.95 and info["nlist"] == ivf.nlist


def test_the_kernel_reads_every_float16_exactly():
    """The fused search reads float16 rerank rows from their bits; all 65,536 patterns as numpy does."""
    from hashrec.retrieval.numba_kernels import half_to_float

    @numba.njit
    def convert(bits):
        out = np.empty(bits.shape[0], np.float32)
        for i in range(bits.shape[0]):
            out[i] = half_to_float(bits[i])
        return out

    bits = np.arange(2**16, dtype=np.uint16)
    expected = bits.view(np.float16).astype(np.float32)
    got = convert(bits)
    same_bits = got.view(np.uint32) == expected.view(np.uint32)
    assert (same_bits | (np.isnan(got) & np.isnan(expected))).all()


def test_the_kernels_load_where_no_cache_directory_is_writable():
    """A read-only install: numba refuses cache=True at import; the kernels cache in a temp dir."""
    import subprocess
    import sys

    script = (
        "import numba.core.caching as caching, numba\n"
        "caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]\n"
        "numba.config.CACHE_DIR = ''\n"  # as if no in-tree or user-wide directory were writable
        "import numpy as np\n"
        "from hashrec.retrieval import kernels\n"
        "codes = np.arange(64, dtype=np.uint8).reshape(8, 8)\n"
        "print(kernels.hamming_knn_kernel(codes.view(np.uint64).ravel(), codes[:1], 3)[1][0, 0])\n"
        "print(numba.config.CACHE_DIR)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    nearest, cache_dir = result.stdout.split()
    assert nearest == "0" and "hashrec-numba-" in cache_dir
    assert "numba cache moved" in result.stderr
