"""The single exception type raised for malformed interaction data."""

from __future__ import annotations

import os

__all__ = ["DataError"]


class DataError(ValueError):
    """Malformed or unreadable interaction data.

    Parameters
    ----------
    path : str or os.PathLike
        The file or directory at fault.
    reason : str
        What is wrong, in words.
    line : int, optional
        The 1-based line of ``path`` at fault, when there is one.

    Notes
    -----
    ``str(err)`` is ``f"{path}:{line}: {reason}"``, or ``f"{path}: {reason}"`` without a line.
    """

    path: str
    line: int | None
    reason: str

    def __init__(self, path: str | os.PathLike[str], reason: str, line: int | None = None):
        self.path = os.fsdecode(path)
        self.reason = reason
        self.line = line
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[type[DataError], tuple[str, str, int | None]]:
        """Pickle by constructor arguments."""
        return (type(self), (self.path, self.reason, self.line))
