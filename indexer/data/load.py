"""``load_interactions``: read any supported format and split it."""

from __future__ import annotations

import os
from pathlib import Path

from .build import build_interactions
from .detect import (
    FORMATS,
    LIGHTGCN_FILES,
    MOVIELENS_FILES,
    find_dataset_file,
    format_from_content,
    format_from_name,
    is_parquet,
)
from .errors import DataError
from .interactions import SPLITS, Interactions
from .parquet import read_parquet
from .records import Records, concat_records
from .tabular import read_csv
from .textformats import read_lightgcn, read_movielens
from .textio import decode_text, read_raw

__all__ = ["load_interactions"]

_Columns = tuple[str | None, str | None, str | None]


def load_interactions(
    path: str | os.PathLike[str],
    format: str = "auto",
    split: str = "auto",
    test_fraction: float = 0.2,
    seed: int = 0,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Interactions:
    """Load implicit-feedback interactions and split them into train and test.

    Parameters
    ----------
    path : str or os.PathLike
        A file, or a directory holding ``train.txt[.gz]`` and ``test.txt[.gz]`` (LightGCN)
        or one of ``u.data``, ``ratings.dat``, ``interactions.dat`` (MovieLens, optionally
        ``.gz``, looked for in that order).
    format : {"auto", "lightgcn", "movielens", "csv", "parquet"}
        ``"auto"`` detects the format from the directory contents, the file name, then the
        first non-blank line. Text formats may be gzipped (detected by magic bytes).
    split : {"auto", "files", "random", "temporal"}
        ``"auto"`` keeps the data's own split (LightGCN directory, CSV/parquet ``split``
        column) when it has one, else splits at random. ``"temporal"`` puts each user's
        latest items in test and needs timestamps.
    test_fraction : float
        Share of each user's items held out by the random and temporal splits, in
        ``[0, 1)``; at least one item of each user stays in train.
    seed : int
        Seed of the random split.
    user_col, item_col, time_col : str, optional
        Column names for CSV and parquet; by default looked up among the usual names
        (``user``, ``user_id``, ``userId``, ``uid``; ``item``, ``item_id``, ``itemId``,
        ``movieId``, ``iid``; ``timestamp``, ``time``, ``ts``).

    Returns
    -------
    Interactions
        Dense ids cover train and test together: ordered by integer value when all ids of a
        kind are integers, else lexicographically.

    Raises
    ------
    DataError
        For any malformed or unreadable input, naming the file and, where there is one, the
        1-based line.
    ValueError
        For a ``test_fraction`` outside ``[0, 1)``.
    """
    location = Path(path)
    if format != "auto" and format not in FORMATS:
        choices = ", ".join(("auto", *FORMATS))
        raise DataError(location, f"unknown format {format!r}; expected one of {choices}")
    if split != "auto" and split not in SPLITS:
        choices = ", ".join(("auto", *SPLITS))
        raise DataError(location, f"unknown split {split!r}; expected one of {choices}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    columns: _Columns = (user_col, item_col, time_col)
    if location.is_dir():
        fmt, records = _read_directory(location, format, columns)
    elif location.is_file():
        fmt, records = _read_file(location, format, columns)
    elif location.exists():
        raise DataError(location, "not a regular file or directory")
    else:
        raise DataError(location, "no such file or directory")
    return build_interactions(
        records,
        split=split,
        test_fraction=test_fraction,
        seed=seed,
        source=f"{fmt}:{location}",
    )


def _read_directory(directory: Path, format: str, columns: _Columns) -> tuple[str, Records]:
    """Read a LightGCN train/test directory or a MovieLens directory."""
    if format in ("auto", "lightgcn"):
        train = find_dataset_file(directory, LIGHTGCN_FILES[0])
        test = find_dataset_file(directory, LIGHTGCN_FILES[1])
        if train is not None and test is not None:
            parts = [_read_file(p, "lightgcn", columns)[1] for p in (train, test)]
            return "lightgcn", concat_records(str(directory), parts, [False, True])
        if format == "lightgcn":
            missing = "train.txt[.gz]" if train is None else "test.txt[.gz]"
            raise DataError(directory, f"LightGCN directory lacks {missing}")
    if format in ("auto", "movielens"):
        for name in MOVIELENS_FILES:
            found = find_dataset_file(directory, name)
            if found is not None:
                return "movielens", _read_file(found, "movielens", columns)[1]
        if format == "movielens":
            wanted = ", ".join(f"{n}[.gz]" for n in MOVIELENS_FILES)
            raise DataError(directory, f"MovieLens directory has none of {wanted}")
    if format in ("csv", "parquet"):
        raise DataError(directory, f"format {format!r} needs a file, not a directory")
    listing = ", ".join(sorted(p.name for p in directory.iterdir())[:20]) or "nothing"
    lightgcn = " and ".join(f"{n}[.gz]" for n in LIGHTGCN_FILES)
    movielens = ", ".join(MOVIELENS_FILES)
    reason = f"no dataset found: expected {lightgcn}, or one of {movielens}; directory holds: {listing}"
    raise DataError(directory, reason)


def _read_file(path: Path, format: str, columns: _Columns) -> tuple[str, Records]:
    """Read one file in the given (or detected) format."""
    raw = read_raw(path)
    fmt = format if format != "auto" else format_from_name(path)
    if fmt is None and is_parquet(raw):
        fmt = "parquet"
    if fmt == "parquet":
        return fmt, read_parquet(path, raw, *columns)
    text = decode_text(path, raw)
    if fmt is None:
        fmt = format_from_content(path, text)
    if fmt == "lightgcn":
        return fmt, read_lightgcn(path, text)
    if fmt == "movielens":
        return fmt, read_movielens(path, text)
    return fmt, read_csv(path, text, *columns)
