"""IdIndex agrees with a dict on every lookup."""

from __future__ import annotations

import numpy as np
from hashrec.retrieval.ids import IdIndex
from hypothesis import given
from hypothesis import strategies as st

# NUL is excluded: numpy's fixed-width unicode (the artifact's id format) cannot hold a trailing NUL.
ID_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1, max_size=6)


@given(st.lists(ID_TEXT, unique=True, max_size=60), st.lists(ID_TEXT))
def test_matches_a_dict(ids, probes):
    array = np.array(ids, dtype=str) if ids else np.array([], dtype="<U1")
    index = IdIndex(array)
    reference = {key: row for row, key in enumerate(ids)}
    for key in [*ids, *probes]:
        assert index.get(key) == reference.get(key)
        assert (key in index) == (key in reference)
    assert index.rows([*ids, *probes]).tolist() == [reference.get(k, -1) for k in [*ids, *probes]]


def test_long_probe_is_not_truncated_into_a_match():
    index = IdIndex(np.array(["ab", "abc"]))
    assert index.get("abcd") is None and index.rows(["abcd"]).tolist() == [-1]


def test_a_trailing_nul_never_aliases_a_real_id():
    """numpy's fixed-width strings drop trailing NULs, so 'u1\\x00' would become 'u1'."""
    index = IdIndex(np.array(["u1", "u2"]))
    for key in ("u1\x00", "u2\x00\x00"):
        assert index.get(key) is None and key not in index
    assert index.rows(["u1\x00", "u1", "u2\x00"]).tolist() == [-1, 0, -1]


@given(st.lists(ID_TEXT, unique=True, max_size=60), st.lists(ID_TEXT))
def test_utf8_ids_match_a_dict(ids, probes):
    """Format 2 stores ids as UTF-8 bytes: the same lookups, and labels give the str back."""
    encodable = [i for i in ids if all(not "\ud800" <= ch <= "\udfff" for ch in i)]
    array = np.char.encode(np.array(encodable, dtype=str), "utf-8") if encodable else np.zeros(0, "S1")
    index = IdIndex(array)
    reference = {key: row for row, key in enumerate(encodable)}
    for key in [*encodable, *probes]:
        assert index.get(key) == reference.get(key)
    assert index.rows([*encodable, *probes]).tolist() == [reference.get(k, -1) for k in [*encodable, *probes]]
    assert index.labels(np.arange(len(encodable))) == encodable


def test_utf8_ids_refuse_nul_long_and_unencodable_keys():
    index = IdIndex(np.char.encode(np.array(["u1", "é2"]), "utf-8"))
    assert index.get("é2") == 1 and index.labels(np.array([1, 0])) == ["é2", "u1"]
    for key in ("u1\x00", "é2x", "\ud800"):
        assert index.get(key) is None
    assert index.rows(["u1\x00", "u1", "\ud800", "é2"]).tolist() == [-1, 0, -1, 1]
