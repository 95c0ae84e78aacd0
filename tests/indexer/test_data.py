"""Tests for indexer.data: readers, format detection, splits, generator, CSV writer, errors."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hashrec.indexer.data import (
    DataError,
    Interactions,
    generate_interactions,
    load_interactions,
    write_interactions_csv,
)
from hashrec.indexer.data.synthetic import item_community
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
DATASETS = Path("/work/shared/datasets")


def pairs(matrix: sp.csr_matrix, data: Interactions) -> set[tuple[str, str]]:
    """External (user, item) pairs of a CSR matrix."""
    coo = matrix.tocoo()
    return {(data.user_ids[r], data.item_ids[c]) for r, c in zip(coo.row, coo.col, strict=True)}


def gzip_copy(src: Path, dst: Path) -> Path:
    """Write a gzipped copy of src at dst."""
    dst.write_bytes(gzip.compress(src.read_bytes()))
    return dst


def check_canonical(data: Interactions) -> None:
    """Assert the documented matrix layout."""
    assert data.user_ids.dtype.kind == "U" and data.item_ids.dtype.kind == "U"
    for matrix in (data.train, data.test):
        assert sp.isspmatrix_csr(matrix)
        assert matrix.shape == (data.n_users, data.n_items)
        assert matrix.dtype == np.float32
        assert np.all(matrix.data == 1.0)
        assert matrix.has_sorted_indices
        copy = matrix.copy()
        copy.sum_duplicates()
        assert copy.nnz == matrix.nnz


# --- formats -------------------------------------------------------------------------------


def test_lightgcn_directory_gives_files_split() -> None:
    data = load_interactions(FIXTURES / "lightgcn")
    check_canonical(data)
    assert data.split == "files"
    assert data.source.startswith("lightgcn:")
    assert data.user_ids.tolist() == ["0", "1", "2", "3"]  # user 2 has no items but is kept
    assert data.item_ids.tolist() == ["0", "1", "2", "3", "4"]
    assert pairs(data.train, data) == {
        ("0", "0"), ("0", "1"), ("0", "2"), ("1", "2"), ("1", "3"),
        ("3", "1"), ("3", "4"), ("3", "0"),
    }  # fmt: skip
    assert pairs(data.test, data) == {("0", "3"), ("1", "4"), ("3", "2")}
    assert data.train.getrow(2).nnz == 0


def test_lightgcn_gzip_and_plain_are_identical(tmp_path: Path) -> None:
    for name in ("train.txt", "test.txt"):
        gzip_copy(FIXTURES / "lightgcn" / name, tmp_path / f"{name}.gz")
    plain = load_interactions(FIXTURES / "lightgcn")
    packed = load_interactions(tmp_path)
    assert packed == plain
    assert packed.fingerprint() == plain.fingerprint()


def test_lightgcn_single_file_is_split_at_random() -> None:
    data = load_interactions(FIXTURES / "lightgcn" / "train.txt", test_fraction=0.4)
    assert data.split == "random"
    everything = pairs(data.train, data) | pairs(data.test, data)
    assert everything == {
        ("0", "0"), ("0", "1"), ("0", "2"), ("1", "2"), ("1", "3"),
        ("3", "1"), ("3", "4"), ("3", "0"),
    }  # fmt: skip
    assert data.test.nnz > 0


def test_movielens_u_data() -> None:
    data = load_interactions(FIXTURES / "ml100k" / "u.data")
    check_canonical(data)
    assert data.user_ids.tolist() == ["1", "2", "3"]
    assert data.item_ids.tolist() == ["10", "20", "30", "40", "50", "60", "70", "80"]
    assert data.train.nnz + data.test.nnz == 12
    assert data.source.startswith("movielens:")


def test_movielens_ratings_dat_orders_integer_ids_numerically() -> None:
    data = load_interactions(FIXTURES / "ml1m" / "ratings.dat", split="temporal")
    assert data.user_ids.tolist() == ["1", "2", "10"]
    assert data.item_ids.tolist() == ["661", "914", "1193", "3408"]
    # user 1: 1193 (ts ...760) is the latest of 3; user 2: 3408 (...039) latest of 3.
    assert pairs(data.test, data) == {("1", "661"), ("2", "3408")}


def test_movielens_pairs_gz_and_directory() -> None:
    data = load_interactions(FIXTURES / "ml1m_pairs" / "interactions.dat.gz")
    same = load_interactions(FIXTURES / "ml1m_pairs")
    assert data == same
    assert data.user_ids.tolist() == ["1", "2", "3"]
    assert data.item_ids.tolist() == ["661", "914", "1193", "2355", "3408"]
    assert data.train.nnz + data.test.nnz == 11  # one duplicate pair collapsed
    with pytest.raises(DataError, match="timestamps"):
        load_interactions(FIXTURES / "ml1m_pairs", split="temporal")


def test_movielens_plain_and_gzip_are_identical(tmp_path: Path) -> None:
    packed = gzip_copy(FIXTURES / "ml100k" / "u.data", tmp_path / "u.data.gz")
    assert load_interactions(packed) == load_interactions(FIXTURES / "ml100k" / "u.data")
    text = gzip.decompress((FIXTURES / "ml1m_pairs" / "interactions.dat.gz").read_bytes())
    (tmp_path / "interactions.dat").write_bytes(text)
    plain = load_interactions(tmp_path / "interactions.dat")
    assert plain.fingerprint() == load_interactions(FIXTURES / "ml1m_pairs").fingerprint()


def test_csv_with_split_column() -> None:
    data = load_interactions(FIXTURES / "interactions.csv")
    check_canonical(data)
    assert data.split == "files"
    assert data.user_ids.tolist() == ["alice", "bob", "carol"]
    assert data.item_ids.tolist() == ["apple", "banana", "cherry", "date"]
    assert pairs(data.test, data) == {("alice", "cherry"), ("bob", "apple"), ("carol", "apple")}
    assert data.train.nnz == 5
    resplit = load_interactions(FIXTURES / "interactions.csv", split="temporal", test_fraction=0.4)
    latest = {("alice", "apple"), ("bob", "banana"), ("carol", "apple")}
    assert pairs(resplit.test, resplit) == latest


def test_csv_columns_by_name_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("who;what;when\n10;b;1\n9;a;2\n100;a;3\n9;c;4\n")
    with pytest.raises(DataError, match="missing user column"):
        load_interactions(path)
    data = load_interactions(path, user_col="who", item_col="what", time_col="when")
    assert data.user_ids.tolist() == ["9", "10", "100"]  # integer ids: numeric order
    assert data.split == "random"
    packed = gzip_copy(path, tmp_path / "events.csv.gz")
    assert load_interactions(packed, user_col="who", item_col="what", time_col="when") == data


def test_parquet_matches_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "user_id": ["alice", "alice", "alice", "bob", "bob", "carol", "carol", "carol"],
            "item_id": ["apple", "banana", "cherry", "banana", "apple", "cherry", "date", "apple"],
            "timestamp": [3, 1, 2, 5, 4, 7, 8, 9],
            "split": ["train", "train", "test", "train", "test", "train", "train", "test"],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    data = load_interactions(path)
    assert data == load_interactions(FIXTURES / "interactions.csv")
    assert data.source.startswith("parquet:")
    (tmp_path / "noext").write_bytes(path.read_bytes())
    assert load_interactions(tmp_path / "noext") == data


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("lightgcn/train.txt", "lightgcn"),
        ("ml100k/u.data", "movielens"),
        ("ml1m/ratings.dat", "movielens"),
        ("interactions.csv", "csv"),
    ],
)
def test_format_sniffed_from_content(tmp_path: Path, source: str, expected: str) -> None:
    target = tmp_path / "data"  # no telling name: the first line decides
    target.write_bytes((FIXTURES / source).read_bytes())
    data = load_interactions(target)
    assert data.source == f"{expected}:{target}"
    assert data == load_interactions(target, format=expected)
    packed = gzip_copy(target, tmp_path / "blob")
    assert load_interactions(packed).source == f"{expected}:{packed}"


def test_explicit_format_overrides_name(tmp_path: Path) -> None:
    path = tmp_path / "weird.csv"
    path.write_text("0 1 2\n1 2\n")
    assert load_interactions(path, format="lightgcn").n_items == 2
    with pytest.raises(DataError):
        load_interactions(path)  # by name it is CSV, and has no usable header


# --- splits --------------------------------------------------------------------------------


def test_random_split_is_seeded_disjoint_and_keeps_users_in_train() -> None:
    base = generate_interactions(n_users=300, n_items=200, seed=3, test_fraction=0.0)
    assert base.test.nnz == 0
    path_data = base.train
    assert path_data.nnz > 0
    first = generate_interactions(n_users=300, n_items=200, seed=3, test_fraction=0.3)
    again = generate_interactions(n_users=300, n_items=200, seed=3, test_fraction=0.3)
    assert first.fingerprint() == again.fingerprint()
    assert first.train.multiply(first.test).nnz == 0
    assert (first.train + first.test - base.train).count_nonzero() == 0
    per_user = np.diff(first.train.indptr)
    assert per_user.min() >= 1
    share = first.test.nnz / base.train.nnz
    assert 0.25 < share < 0.35


def test_random_split_of_loaded_data_depends_only_on_seed(tmp_path: Path) -> None:
    src = FIXTURES / "ml100k" / "u.data"
    a = load_interactions(src, seed=7, test_fraction=0.4)
    b = load_interactions(src, seed=7, test_fraction=0.4)
    assert a.fingerprint() == b.fingerprint()
    seeds = {load_interactions(src, seed=s, test_fraction=0.4).fingerprint() for s in range(8)}
    assert len(seeds) > 1
    for data in (a, b):
        assert data.train.multiply(data.test).nnz == 0
        assert np.diff(data.train.indptr).min() >= 1
        # users with 5 items hold out round(0.4 * 5) = 2, the user with 2 items holds out 1
        assert np.diff(data.test.indptr).tolist() == [2, 2, 1]


def test_single_item_users_stay_in_train(tmp_path: Path) -> None:
    path = tmp_path / "pairs.dat"
    path.write_text("1::1\n2::1\n2::2\n")
    data = load_interactions(path, test_fraction=0.9)
    assert np.diff(data.train.indptr).tolist() == [1, 1]
    assert np.diff(data.test.indptr).tolist() == [0, 1]


def test_temporal_split_puts_latest_items_in_test() -> None:
    data = load_interactions(FIXTURES / "ml100k", split="temporal", test_fraction=0.4)
    assert data.split == "temporal"
    assert pairs(data.test, data) == {
        ("1", "40"), ("1", "50"), ("2", "70"), ("2", "80"), ("3", "60"),
    }  # fmt: skip
    assert data.train.multiply(data.test).nnz == 0


def test_files_split_requires_files() -> None:
    with pytest.raises(DataError, match="split='files'"):
        load_interactions(FIXTURES / "ml100k" / "u.data", split="files")
    combined = load_interactions(FIXTURES / "lightgcn", split="random", test_fraction=0.3)
    assert combined.split == "random"
    assert combined.train.nnz + combined.test.nnz == 11


# --- generator -----------------------------------------------------------------------------


def test_generator_is_deterministic() -> None:
    a = generate_interactions(n_users=200, n_items=150, seed=5)
    b = generate_interactions(n_users=200, n_items=150, seed=5)
    c = generate_interactions(n_users=200, n_items=150, seed=6)
    check_canonical(a)
    assert a == b and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert a.user_ids[0] == "u000" and a.item_ids[-1] == "i149"
    assert a.split == "random" and a.source.startswith("synthetic(seed=5")


def test_generator_basket_sizes_and_long_tail() -> None:
    data = generate_interactions(n_users=1000, n_items=500, mean_items_per_user=20.0, seed=1)
    both = (data.train + data.test).tocsr()
    sizes = np.diff(both.indptr)
    assert sizes.min() >= 2
    assert 15 < sizes.mean() < 25
    assert sizes.max() > 3 * sizes.mean()  # long-tailed activity
    counts = np.sort(np.bincount(both.indices, minlength=data.n_items))[::-1]
    top_share = counts[: data.n_items // 10].sum() / counts.sum()
    assert top_share > 0.3  # top 10% of items hold far more than 10% of interactions
    flat = generate_interactions(n_users=1000, n_items=500, popularity_exponent=0.0, seed=1)
    flat_counts = np.sort(np.bincount(flat.train.indices, minlength=500))[::-1]
    assert flat_counts[:50].sum() / flat_counts.sum() < top_share


def test_generator_community_structure() -> None:
    n_communities = 8
    data = generate_interactions(n_users=400, n_items=400, n_communities=n_communities, seed=2)
    both = (data.train + data.test).tocsr()
    items = np.array([int(i[1:]) for i in data.item_ids])
    top_shares = []
    for user in range(data.n_users):
        cols = both.indices[both.indptr[user] : both.indptr[user + 1]]
        communities = np.bincount(item_community(items[cols], n_communities), minlength=8)
        top_shares.append(np.sort(communities)[-2:].sum() / len(cols))
    # a user's two top communities hold most items; uniform mixing would give about 2/8
    assert np.median(top_shares) > 0.75


# --- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz"])
def test_write_csv_round_trip(tmp_path: Path, name: str) -> None:
    data = generate_interactions(n_users=60, n_items=400, seed=4)
    assert np.bincount(data.train.indices, minlength=400).min() == 0  # some unused items
    path = tmp_path / name
    write_interactions_csv(data, path)
    back = load_interactions(path)
    assert back.split == "files"
    assert back == data
    assert back.fingerprint() == data.fingerprint()


def test_write_csv_round_trip_keeps_users_without_items(tmp_path: Path) -> None:
    data = load_interactions(FIXTURES / "lightgcn")
    path = tmp_path / "lightgcn.csv"
    write_interactions_csv(data, path)
    back = load_interactions(path)
    assert back.user_ids.tolist() == data.user_ids.tolist()
    assert back.fingerprint() == data.fingerprint()
    csv_data = load_interactions(FIXTURES / "interactions.csv")
    write_interactions_csv(csv_data, path)
    assert load_interactions(path) == csv_data


# --- errors --------------------------------------------------------------------------------

ERROR_CASES = [
    ("train.txt", b"0 1 2\n1 x 3\n", "auto", 2, "non-integer item id"),
    ("train.txt", b"0 1\n\n2 -3\n", "auto", 3, "negative item id"),
    ("train.txt", b"0 1\n-2 3\n", "lightgcn", 2, "negative user id"),
    ("u.data", b"1\t2\t3\t4\n1\tb\t3\t4\n", "auto", 2, "non-integer item id"),
    ("u.data", b"1\t2\t3\t4\n1\t2\t3\tlate\n", "auto", 2, "timestamp"),
    ("u.data", b"1\t2\t3\t4\n1\t2\tgood\t5\n", "auto", 2, "rating"),
    ("ratings.dat", b"1::2::3::4\n\n1::2::3\n", "auto", 3, "expected 4 fields"),
    ("pairs.dat", b"1::2\nabc::2\n", "movielens", 2, "non-integer user id"),
    ("pairs.dat", b"1\n", "movielens", 1, "expected 2 to 4 fields"),
    ("data.csv", b"user,foo\n1,2\n", "auto", 1, "missing item column"),
    ("data.csv", b"user,item\n1,2\n3,4,5\n", "auto", 3, "expected 2 fields"),
    ("data.csv", b"user,item,split\n1,2,train\n1,3,valid\n", "auto", 3, "neither"),
    ("data.csv", b"user,item,ts\n1,2,5\n1,3,soon\n", "auto", 3, "timestamp"),
    ("data.csv", b"user,item\n1,2\n,3\n", "auto", 3, "empty user id"),
    ("data.csv", b'user,item\n1,2\n"3,4\n', "auto", 3, None),
    ("train.txt", b"0 1\n1 2\n\xff\xfe 3\n", "auto", 3, "UTF-8"),
    ("train.txt", b"0 1\n1 2\x00\x01\x02\n", "auto", 2, "binary"),
    ("blob.bin", b"hello world\n", "auto", 1, "cannot detect"),
]


@pytest.mark.parametrize(("name", "content", "fmt", "line", "reason"), ERROR_CASES)
def test_errors_name_file_and_line(
    tmp_path: Path, name: str, content: bytes, fmt: str, line: int, reason: str | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        load_interactions(path, format=fmt)
    err = caught.value
    assert err.line == line
    assert f"{path}:{line}: " in str(err)
    if reason is not None:
        assert reason in str(err)
    # the same error, with the same line, when gzipped
    packed = tmp_path / f"{name}.gz"
    packed.write_bytes(gzip.compress(content))
    with pytest.raises(DataError) as caught_gz:
        load_interactions(packed, format=fmt)
    assert caught_gz.value.line == line and packed.name in str(caught_gz.value)


def test_missing_column_message_lists_present_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("who,item,extra\n1,2,3\n")
    with pytest.raises(DataError, match=r"missing user column .*'who', 'item', 'extra'"):
        load_interactions(path)
    with pytest.raises(DataError, match="missing time column 'when'"):
        load_interactions(path, user_col="who", time_col="when")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.txt", b"", "no interactions"),
        ("blank.txt", b"\n  \n\n", "no interactions"),
        ("users.txt", b"0\n1\n2\n", "no interactions"),
        ("header.csv", b"user,item\n", "no interactions"),
        ("empty.csv", b"", "no interactions"),
        ("x.parquet", b"PAR1 not really parquet", "parquet"),
    ],
)
def test_errors_without_line(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as caught:
        load_interactions(path)
    assert name in str(caught.value)


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    whole = gzip.compress((FIXTURES / "lightgcn" / "train.txt").read_bytes() * 50)
    path = tmp_path / "train.txt.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="gzip") as caught:
        load_interactions(path)
    assert "train.txt.gz" in str(caught.value)


def test_error_in_lightgcn_test_file_names_it(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "lightgcn" / "train.txt", tmp_path / "train.txt")
    (tmp_path / "test.txt").write_text("0 3\n1 4.5\n")
    with pytest.raises(DataError) as caught:
        load_interactions(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'test.txt'}:2: ")


def test_path_format_and_split_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="no such file") as caught:
        load_interactions(missing)
    assert str(caught.value) == f"{missing}: no such file or directory"
    with pytest.raises(DataError, match="unknown format 'xml'"):
        load_interactions(FIXTURES / "interactions.csv", format="xml")
    with pytest.raises(DataError, match="unknown split"):
        load_interactions(FIXTURES / "interactions.csv", split="kfold")
    with pytest.raises(DataError, match="no dataset found"):
        load_interactions(tmp_path)
    with pytest.raises(DataError, match="timestamps"):
        load_interactions(FIXTURES / "lightgcn", split="temporal")
    with pytest.raises(ValueError, match="test_fraction"):
        load_interactions(FIXTURES / "interactions.csv", test_fraction=1.0)


def test_data_error_shape_and_pickle() -> None:
    err = DataError("a/b.txt", "bad id", line=3)
    assert str(err) == "a/b.txt:3: bad id"
    assert (err.path, err.line, err.reason) == ("a/b.txt", 3, "bad id")
    assert str(DataError(Path("c.csv"), "empty")) == "c.csv: empty"
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == 3


_NAMES = st.sampled_from(["data.txt", "train.txt", "u.data", "ratings.dat", "x.csv", "blob"])
_ALPHABET = st.sampled_from([*"0123456789 \t\n:,;-xy\r", "user", "item", "split", "é"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=_NAMES,
    content=st.one_of(
        st.binary(max_size=200),
        st.lists(_ALPHABET, max_size=60).map(lambda parts: "".join(parts).encode()),
        st.text(max_size=100).map(str.encode),
    ),
    packed=st.booleans(),
)
def test_arbitrary_files_load_or_raise_data_error(
    tmp_path: Path, name: str, content: bytes, packed: bool
) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if packed else content)
    try:
        data = load_interactions(path)
    except DataError as err:
        assert str(err).startswith(str(path))
    else:
        check_canonical(data)
        assert data.train.nnz >= 1


# --- real data sets (read-only, shared; skipped where absent) ------------------------------


@pytest.mark.skipif(not (DATASETS / "gowalla").is_dir(), reason="gowalla not available")
def test_gowalla() -> None:
    data = load_interactions(DATASETS / "gowalla")
    assert (data.n_users, data.n_items) == (29858, 40981)
    assert (data.train.nnz, data.test.nnz) == (810128, 217242)
    assert data.user_ids[-1] == "29857" and data.item_ids[-1] == "40980"


@pytest.mark.skipif(not (DATASETS / "ml-100k").is_dir(), reason="ml-100k not available")
def test_ml100k() -> None:
    data = load_interactions(DATASETS / "ml-100k", split="temporal")
    assert (data.n_users, data.n_items) == (943, 1682)
    assert data.train.nnz + data.test.nnz == 100_000
