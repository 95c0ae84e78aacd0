"""Tables with named columns: column lookup, row validation and the CSV parser."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .errors import DataError
from .records import Records

__all__ = [
    "ITEM_COLUMNS",
    "SPLIT_COLUMN",
    "TIME_COLUMNS",
    "USER_COLUMNS",
    "read_csv",
    "resolve_columns",
    "table_records",
]

USER_COLUMNS = ("user", "user_id", "userId", "uid")
ITEM_COLUMNS = ("item", "item_id", "itemId", "movieId", "iid")
TIME_COLUMNS = ("timestamp", "time", "ts")
SPLIT_COLUMN = "split"
_DELIMITERS = (",", "\t", ";", "|")
MAX_ID_CHARS = 1024
_SPLIT_VALUES = frozenset(("train", "test", ""))


def _find_column(names: Sequence[str], candidates: Sequence[str]) -> int | None:
    """Index of the first candidate present, matched exactly, then case-insensitively."""
    for candidate in candidates:
        if candidate in names:
            return list(names).index(candidate)
    lowered = [name.lower() for name in names]
    for candidate in candidates:
        if candidate.lower() in lowered:
            return lowered.index(candidate.lower())
    return None


def _resolve(
    path: Path,
    names: Sequence[str],
    kind: str,
    given: str | None,
    candidates: Sequence[str],
    line: int | None,
    required: bool = True,
) -> int | None:
    """Find one column by its given name or its usual names, or raise DataError."""
    present = ", ".join(repr(n) for n in names) or "none"
    if given is not None:
        if given in names:
            return list(names).index(given)
        reason = f"missing {kind} column {given!r}; columns present: {present}"
        raise DataError(path, reason, line=line)
    index = _find_column(names, candidates)
    if index is None and required:
        looked = ", ".join(candidates)
        reason = f"missing {kind} column (looked for {looked}); columns present: {present}"
        raise DataError(path, reason, line=line)
    return index


def resolve_columns(
    path: Path,
    names: Sequence[str],
    cols: tuple[str | None, str | None, str | None],
    line: int | None,
) -> tuple[int, int, int | None, int | None]:
    """Resolve the user, item, optional time and optional split columns."""
    user_col, item_col, time_col = cols
    user = _resolve(path, names, "user", user_col, USER_COLUMNS, line)
    item = _resolve(path, names, "item", item_col, ITEM_COLUMNS, line)
    time = _resolve(path, names, "time", time_col, TIME_COLUMNS, line, required=False)
    split = _find_column(names, (SPLIT_COLUMN,))
    assert user is not None and item is not None
    return user, item, time, split


def _parse_time(value: str) -> float | None:
    """A number, or an ISO-8601 date/time as POSIX seconds (naive means UTC); None if neither."""
    try:
        number = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return number if math.isfinite(number) else None


def _times_array(values: Sequence[str] | np.ndarray, fail_at: _Failer) -> np.ndarray:
    """Parse timestamps (numbers or ISO dates) to float64."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        result = values.astype(np.float64)
    else:
        try:
            result = np.array(values, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            parsed = []
            for k, value in enumerate(values):
                number = _parse_time(value)
                if number is None:
                    fail_at(k, f"unparseable timestamp {value!r}")
                parsed.append(number)
            result = np.array(parsed, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(result))
    if bad.size:
        fail_at(int(bad[0]), f"unparseable timestamp {values[int(bad[0])]!r}")
    return result


class _Failer:
    """Raise DataError for the k-th data row: by line (CSV) or by row number (parquet)."""

    def __init__(self, path: Path, lines: Sequence[int] | None, index: np.ndarray | None = None):
        self.path = path
        self.lines = lines
        self.index = index

    def __call__(self, k: int, reason: str) -> None:
        """Raise for row k (a position in the subset selected by ``index``, if any)."""
        row = int(self.index[k]) if self.index is not None else k
        if self.lines is None:
            raise DataError(self.path, f"row {row + 1}: {reason}")
        raise DataError(self.path, reason, line=self.lines[row])

    def subset(self, index: np.ndarray) -> _Failer:
        """A failer for positions within the rows ``index``."""
        return _Failer(self.path, self.lines, index)


def table_records(
    path: Path,
    users: Sequence[str],
    items: Sequence[str],
    times: Sequence[str] | np.ndarray | None,
    splits: Sequence[str] | None,
    lines: Sequence[int] | None,
) -> Records:
    """Validate the columns of a table and turn them into Records.

    With a split column, a row whose split is empty and whose user or item is empty declares
    the other id without an interaction (``write_interactions_csv`` writes such rows).
    """
    fail = _Failer(path, lines)
    for kind, values in (("user", users), ("item", items)):
        if len(values) and max(map(len, values)) > MAX_ID_CHARS:
            k = next(k for k, v in enumerate(values) if len(v) > MAX_ID_CHARS)
            fail(k, f"{kind} id longer than {MAX_ID_CHARS} characters")
    user_arr = np.array(users, dtype=str) if len(users) else np.empty(0, dtype="<U1")
    item_arr = np.array(items, dtype=str) if len(items) else np.empty(0, dtype="<U1")
    no_user = user_arr == ""
    no_item = item_arr == ""
    declare = np.zeros(len(user_arr), dtype=bool)
    is_test = None
    if splits is not None:
        lowered = [value.lower() for value in splits]
        bad_value = next((k for k, v in enumerate(lowered) if v not in _SPLIT_VALUES), None)
        if bad_value is not None:
            fail(bad_value, f"split value {splits[bad_value]!r} is neither 'train' nor 'test'")
        split_arr = np.array(lowered, dtype="<U5") if lowered else np.empty(0, dtype="<U5")
        blank = split_arr == ""
        declare = blank & (no_user ^ no_item)
        bad = np.flatnonzero(blank & ~declare & ~no_user & ~no_item)
        if bad.size:
            fail(int(bad[0]), "empty split value (expected 'train' or 'test')")
        is_test = split_arr == "test"
    bad = np.flatnonzero((no_user | no_item) & ~declare)
    if bad.size:
        k = int(bad[0])
        fail(k, "empty user id" if no_user[k] else "empty item id")
    keep = np.flatnonzero(~declare)
    time_arr = None
    if times is not None:
        if not declare.any():
            selected = times
        elif isinstance(times, np.ndarray):
            selected = times[keep]
        else:
            selected = [times[k] for k in keep.tolist()]
        time_arr = _times_array(selected, fail.subset(keep))
    return Records(
        path=str(path),
        users=user_arr[keep],
        items=item_arr[keep],
        times=time_arr,
        is_test=None if is_test is None else is_test[keep],
        extra_users=user_arr[declare & ~no_user],
        extra_items=item_arr[declare & ~no_item],
    )


def _delimiter(path: Path, header: str) -> str:
    """Pick the CSV delimiter: tab for .tsv, else the most frequent candidate in the header."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".tsv"):
        return "\t"
    best = max(_DELIMITERS, key=header.count)
    return best if header.count(best) else ","


def read_csv(
    path: Path,
    data: bytes,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Records:
    """Parse a delimited table with a header row naming the columns.

    Parameters
    ----------
    path : pathlib.Path
        The file, for error messages (a ``.tsv`` name selects tabs).
    data : bytes
        Its decoded content; the delimiter is the most frequent of comma, tab, semicolon
        and bar in the header.
    user_col, item_col, time_col : str, optional
        Column names; by default the usual names are looked up. A ``split`` column, when
        present, gives the file's own train/test split.

    Returns
    -------
    Records
        String ids (stripped of surrounding whitespace).

    Raises
    ------
    DataError
        Missing columns, wrong field counts, empty ids, bad split values or timestamps.
    """
    text = data.decode("utf-8")
    first = next((line for line in text.split("\n") if line.strip()), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(path, first))
    header: list[str] | None = None
    header_line = 0
    picks: tuple[int, int, int | None, int | None] = (0, 0, None, None)
    users: list[str] = []
    items: list[str] = []
    times: list[str] = []
    splits: list[str] = []
    lines: list[int] = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                header_line = reader.line_num
                picks = resolve_columns(path, header, (user_col, item_col, time_col), header_line)
                continue
            if len(row) != len(header):
                reason = f"expected {len(header)} fields like the header, got {len(row)}"
                raise DataError(path, reason, line=reader.line_num)
            user, item, time, split = picks
            users.append(row[user].strip())
            items.append(row[item].strip())
            lines.append(reader.line_num)
            if time is not None:
                times.append(row[time].strip())
            if split is not None:
                splits.append(row[split].strip())
    except csv.Error as err:
        raise DataError(path, f"malformed CSV ({err})", line=reader.line_num) from None
    if header is None:
        raise DataError(path, "no interactions found (file is empty)")
    _, _, time, split = picks
    return table_records(
        path,
        users,
        items,
        times if time is not None else None,
        splits if split is not None else None,
        lines,
    )
