"""Parquet reader (pyarrow is imported lazily, only when a parquet file is read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .records import Records
from .tabular import resolve_columns, table_records

__all__ = ["read_parquet"]


def read_parquet(
    path: Path,
    raw: bytes,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Records:
    """Read a parquet table with pyarrow (imported here, only when needed).

    Parameters
    ----------
    path : pathlib.Path
        The file, for error messages.
    raw : bytes
        Its content.
    user_col, item_col, time_col : str, optional
        Column names, as for `read_csv`.

    Returns
    -------
    Records
        String ids; numeric or date/time timestamps.

    Raises
    ------
    DataError
        An unreadable file, missing columns, nulls or unusable column types; the message
        names the 1-based row where there is one.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - pyarrow is installed with the train extra
        raise DataError(path, "reading parquet needs pyarrow (pip install pyarrow)") from err
    try:
        table = pq.read_table(pa.BufferReader(raw))
    except Exception as err:  # pyarrow raises many types for corrupt files
        raise DataError(path, f"cannot read parquet ({err})") from err
    names = table.column_names
    user, item, time, split = resolve_columns(path, names, (user_col, item_col, time_col), None)

    def strings(index: int) -> list[str]:
        """A column as strings, nulls as empty strings."""
        column = table.column(index)
        try:
            values = column.cast(pa.string()).to_pylist()
        except Exception as err:  # unsupported or undecodable column types
            reason = f"column {names[index]!r} of type {column.type} is not usable as text"
            raise DataError(path, reason) from err
        return ["" if v is None else v.strip() for v in values]

    times: list[str] | np.ndarray | None = None
    if time is not None:
        column = table.column(time)
        numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        times = column.to_numpy() if numeric and column.null_count == 0 else strings(time)
    return table_records(
        path,
        strings(user),
        strings(item),
        times,
        strings(split) if split is not None else None,
        None,
    )
