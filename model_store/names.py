"""Names in the store: versions, aliases and files are single, safe path components."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "version") -> str:
    """Return ``name`` if it is a safe single path component, else raise StoreError.

    Parameters
    ----------
    name : str
        A version, alias or file name.
    what : str
        What the name is, for the error message.

    Returns
    -------
    str
        ``name`` unchanged.

    Raises
    ------
    StoreError
        When the name is empty, too long, starts with anything but a letter or digit, holds a
        character other than letters, digits, ``.``, ``_`` and ``-``, or contains ``..``.
    """
    from hashrec.model_store.errors import StoreError

    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise StoreError(f"invalid {what} name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def new_version_name(now: datetime | None = None) -> str:
    """A generated version name: ``v<UTC date>-<UTC time>-<6 random hex digits>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"v{stamp}-{secrets.token_hex(3)}"
