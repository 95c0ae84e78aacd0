"""Format detection from directory contents, file names and the first line of a file."""

from __future__ import annotations

from pathlib import Path

from .errors import DataError
from .textio import PARQUET_MAGIC, first_content_line

__all__ = [
    "FORMATS",
    "LIGHTGCN_FILES",
    "MOVIELENS_FILES",
    "find_dataset_file",
    "format_from_content",
    "format_from_name",
    "is_parquet",
]

FORMATS = ("lightgcn", "movielens", "csv", "parquet")
LIGHTGCN_FILES = ("train.txt", "test.txt")
MOVIELENS_FILES = ("u.data", "ratings.dat", "interactions.dat")


def find_dataset_file(directory: Path, name: str) -> Path | None:
    """The file ``name`` or ``name.gz`` in ``directory``, preferring the plain one."""
    for candidate in (name, name + ".gz"):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def format_from_name(path: Path) -> str | None:
    """Guess the format from a file name (a trailing ``.gz`` ignored), or None."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".data", ".dat")):
        return "movielens"
    return None


def _is_int(token: bytes) -> bool:
    """Whether a token is a (possibly negative) ASCII decimal integer."""
    return (token[1:] if token[:1] == b"-" else token).isdigit()


def is_parquet(raw: bytes) -> bool:
    """Whether file bytes start with the parquet magic."""
    return raw.startswith(PARQUET_MAGIC)


def format_from_content(path: Path, text: bytes) -> str:
    """Guess a text format from the first non-blank line of the decoded file."""
    found = first_content_line(text)
    if found is None:
        raise DataError(path, "no interactions found (file is empty)")
    number, line = found
    if b"::" in line:
        return "movielens"
    tokens = line.split()
    if b"\t" in line and len(tokens) in (3, 4) and all(map(_is_int, tokens[:2])):
        return "movielens"
    if tokens and all(map(_is_int, tokens)):
        return "lightgcn"
    if any(d in line for d in (b",", b"\t", b";", b"|")):
        return "csv"
    reason = "cannot detect the format from this line; pass format= one of " + ", ".join(FORMATS)
    raise DataError(path, reason, line=number)
