"""Parsers for the LightGCN and MovieLens text formats (on decoded, validated bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .records import Records
from .textio import MAX_TOKEN_BYTES, parse_float_tokens, parse_int_tokens

__all__ = ["read_lightgcn", "read_movielens"]

_MAX_VECTOR_LINE = 128  # longer lines are split in Python, not in fixed-width numpy arrays


def read_lightgcn(path: Path, data: bytes) -> Records:
    """Parse LightGCN ``user item item ...`` lines with non-negative integer ids.

    Parameters
    ----------
    path : pathlib.Path
        The file, for error messages.
    data : bytes
        Its decoded content (see `decode_text`).

    Returns
    -------
    Records
        Integer ids; a line with only a user id declares that user without interactions.

    Raises
    ------
    DataError
        At the first non-integer or negative id, with its line.
    """
    user_tokens: list[bytes] = []
    user_lines: list[int] = []
    counts: list[int] = []
    item_tokens: list[bytes] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        tokens = line.split()
        if tokens:
            user_tokens.append(tokens[0])
            user_lines.append(number)
            counts.append(len(tokens) - 1)
            item_tokens.extend(tokens[1:])
    lines = np.asarray(user_lines, dtype=np.int64)
    per_line = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(per_line)

    def item_line(k: int) -> int:
        """Line of the k-th item token."""
        return int(lines[np.searchsorted(ends, k, side="right")])

    users = parse_int_tokens(path, user_tokens, "user id", lambda k: int(lines[k]), allow_negative=False)
    items = parse_int_tokens(path, item_tokens, "item id", item_line, allow_negative=False)
    return Records(
        path=str(path),
        users=np.repeat(users, per_line),
        items=items,
        extra_users=users[per_line == 0],
    )


def _split_fields(path: Path, lines: np.ndarray, keep: np.ndarray, sep: bytes) -> list[np.ndarray]:
    """Split stripped lines on ``sep`` into equally many fields, vectorized."""
    counts = np.char.count(lines, sep)
    n_fields = int(counts[0]) + 1
    _check_field_counts(path, counts + 1, keep)
    columns = []
    rest = lines
    for _ in range(n_fields - 1):
        parts = np.char.partition(rest, sep)
        columns.append(np.char.strip(parts[:, 0]))
        rest = parts[:, 2]
    columns.append(np.char.strip(rest))
    return columns


def _split_python(path: Path, lines: list[bytes], keep: np.ndarray, sep: bytes | None) -> list[np.ndarray]:
    """Split stripped lines on ``sep`` (None: runs of whitespace) into equally many fields."""
    fields = [line.split(sep) for line in lines]
    counts = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    _check_field_counts(path, counts, keep)
    columns = [[token.strip() for token in column] for column in zip(*fields, strict=True)]
    for column in columns:
        _check_token_lengths(path, column, keep)
    return [np.array(column, dtype=np.bytes_) for column in columns]


def _check_token_lengths(path: Path, tokens: list[bytes], keep: np.ndarray) -> None:
    """Reject overlong tokens early, before they size a numpy array."""
    for k, token in enumerate(tokens):
        if len(token) > MAX_TOKEN_BYTES:
            raise DataError(path, f"field too long ({len(token)} bytes)", line=int(keep[k]) + 1)


def _check_field_counts(path: Path, counts: np.ndarray, keep: np.ndarray) -> None:
    """Require 2 to 4 fields on the first line and the same number on every line."""
    shape = "user, item[, rating[, timestamp]]"
    n_fields = int(counts[0])
    if not 2 <= n_fields <= 4:
        reason = f"expected 2 to 4 fields ({shape}), got {n_fields}"
        raise DataError(path, reason, line=int(keep[0]) + 1)
    bad = np.flatnonzero(counts != n_fields)
    if bad.size:
        k = int(bad[0])
        reason = f"expected {n_fields} fields ({shape}) like line {keep[0] + 1}, got {counts[k]}"
        raise DataError(path, reason, line=int(keep[k]) + 1)


def read_movielens(path: Path, data: bytes) -> Records:
    """Parse MovieLens ratings: ``u::i[::rating[::ts]]`` or whitespace-separated ``u i r ts``.

    The separator (``::``, else whitespace) and the number of fields (2 to 4) come from the
    first non-blank line and must hold for every line. Every rating counts as an interaction;
    the fourth field, when present, is an integer timestamp.

    Parameters
    ----------
    path : pathlib.Path
        The file, for error messages.
    data : bytes
        Its decoded content (see `decode_text`).

    Returns
    -------
    Records
        Integer ids, and times when the lines have four fields.

    Raises
    ------
    DataError
        At the first line with a wrong field count, non-integer id or bad number.
    """
    raw_lines = [line.strip() for line in data.split(b"\n")]
    keep = np.flatnonzero(np.fromiter(map(len, raw_lines), dtype=np.int64, count=len(raw_lines)))
    if keep.size == 0:
        raise DataError(path, "no interactions found (file is empty)")
    lines = [raw_lines[k] for k in keep.tolist()]
    del raw_lines
    first = lines[0]
    separator = b"::" if b"::" in first else b"\t" if b"\t" in first else None
    if separator is not None and max(map(len, lines)) <= _MAX_VECTOR_LINE:
        array = np.array(lines, dtype=np.bytes_)
        if separator == b"::" or not np.char.count(array, b" ").any():
            columns = _split_fields(path, array, keep, separator)
        else:
            columns = _split_python(path, lines, keep, None)
    else:
        columns = _split_python(path, lines, keep, None if separator == b"\t" else separator)
    del lines

    def line_of(k: int) -> int:
        """Line of the k-th record."""
        return int(keep[k]) + 1

    users = parse_int_tokens(path, columns[0], "user id", line_of, allow_negative=True)
    items = parse_int_tokens(path, columns[1], "item id", line_of, allow_negative=True)
    if len(columns) >= 3:
        parse_float_tokens(path, columns[2], "rating", line_of)
    times = None
    if len(columns) == 4:
        times = parse_int_tokens(path, columns[3], "timestamp", line_of, allow_negative=True)
    return Records(path=str(path), users=users, items=items, times=times)
