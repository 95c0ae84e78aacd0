"""Writing Interactions as a ``user,item,split`` CSV that loads back unchanged."""

from __future__ import annotations

import csv
import gzip
import io
import os
from pathlib import Path

import numpy as np

from .interactions import Interactions

__all__ = ["write_interactions_csv"]


def _pairs(interactions: Interactions, which: str) -> tuple[list[str], list[str]]:
    """External (user, item) ids of the train or test pairs, in row-major order."""
    matrix = getattr(interactions, which)
    rows = np.repeat(np.arange(interactions.n_users), np.diff(matrix.indptr))
    return (
        interactions.user_ids[rows].tolist(),
        interactions.item_ids[matrix.indices].tolist(),
    )


def write_interactions_csv(interactions: Interactions, path: str | os.PathLike[str]) -> None:
    """Write interactions as CSV rows ``user,item,split`` (split is ``train`` or ``test``).

    ``load_interactions(path)`` reads the file back to an equal `Interactions` with
    ``split == "files"``. Users and items without any pair are written as rows with an empty
    item (or user) and an empty split, so the id maps survive the round trip too. A path
    ending in ``.gz`` is gzip-compressed (deterministically, without a timestamp).

    Parameters
    ----------
    interactions : Interactions
        The data to write; ids in the order the loaders produce (as all loaders and the
        generator do), so that the dense order is preserved.
    path : str or os.PathLike
        Destination file; its directory is created, the file replaced atomically.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a reader never sees half a file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as raw:
            if target.name.lower().endswith(".gz"):
                with (
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed,
                    io.TextIOWrapper(packed, encoding="utf-8", newline="") as text,
                ):
                    _write_rows(interactions, text)
            else:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                    _write_rows(interactions, text)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _write_rows(interactions: Interactions, stream: io.TextIOBase) -> None:
    """Write the header, the pair rows and the id-only rows."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["user", "item", "split"])
    for which in ("train", "test"):
        users, items = _pairs(interactions, which)
        writer.writerows(zip(users, items, [which] * len(users), strict=True))
    all_pairs = interactions.train + interactions.test
    lonely_users = np.flatnonzero(np.diff(all_pairs.indptr) == 0)
    item_counts = np.bincount(all_pairs.indices, minlength=interactions.n_items)
    lonely_items = np.flatnonzero(item_counts == 0)
    writer.writerows((u, "", "") for u in interactions.user_ids[lonely_users].tolist())
    writer.writerows(("", i, "") for i in interactions.item_ids[lonely_items].tolist())
