"""Reading raw files: gzip detection, UTF-8 and binary checks, integer token parsing."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = [
    "GZIP_MAGIC",
    "MAX_TOKEN_BYTES",
    "PARQUET_MAGIC",
    "decode_text",
    "first_content_line",
    "parse_float_tokens",
    "parse_int_tokens",
    "read_raw",
]

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"
_MAX_DIGITS = 18  # every 18-digit decimal fits in int64
MAX_TOKEN_BYTES = 64  # longer numeric tokens are rejected before they size a numpy array


def read_raw(path: Path) -> bytes:
    """Read a file's bytes, turning OS errors into DataError."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read file: {err.strerror or err}") from err


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of a byte offset."""
    return data.count(b"\n", 0, offset) + 1


def decode_text(path: Path, raw: bytes) -> bytes:
    """Gunzip when gzip magic is present, then check for binary data and valid UTF-8.

    Parameters
    ----------
    path : pathlib.Path
        The file, for error messages.
    raw : bytes
        The file's bytes as stored.

    Returns
    -------
    bytes
        The (decompressed) content without a UTF-8 byte order mark; it decodes as UTF-8.

    Raises
    ------
    DataError
        Corrupt or truncated gzip data, a NUL byte or invalid UTF-8 (with its line).
    """
    data = raw
    if raw.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(path, f"truncated or corrupt gzip data ({err})") from err
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(path, "binary data (NUL byte), not a text file", line=_line_of(data, nul))
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1].hex()
        raise DataError(path, f"invalid UTF-8 (byte 0x{bad})", line=_line_of(data, err.start)) from None
    return data


def first_content_line(data: bytes) -> tuple[int, bytes] | None:
    """Return the 1-based number and stripped content of the first non-blank line."""
    start = 0
    number = 1
    while start <= len(data):
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
        line = data[start:end].strip()
        if line:
            return number, line
        start = end + 1
        number += 1
    return None


def _show(token: bytes) -> str:
    """A token shortened and decoded for an error message."""
    text = token.decode("utf-8", "replace")
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _is_int(token: bytes, allow_negative: bool) -> bool:
    """Whether a token is a decimal integer that fits int64."""
    body = token[1:] if allow_negative and token[:1] == b"-" else token
    return body.isdigit() and len(body) <= _MAX_DIGITS


def _bad_int_reason(token: bytes, what: str, allow_negative: bool) -> str:
    """Explain why a token is not an acceptable integer."""
    body = token[1:] if token[:1] == b"-" else token
    if body.isdigit() and token[:1] == b"-" and not allow_negative:
        return f"negative {what} {_show(token)}"
    if body.isdigit():
        return f"{what} {_show(token)} is out of range"
    return f"non-integer {what} {_show(token)}"


def _reject_long(path: Path | str, tokens: Sequence[bytes], what: str, line_of: Callable[[int], int]) -> None:
    """Raise at the first token longer than MAX_TOKEN_BYTES (never a valid number here)."""
    if max(map(len, tokens)) > MAX_TOKEN_BYTES:
        k = next(k for k, token in enumerate(tokens) if len(token) > MAX_TOKEN_BYTES)
        raise DataError(path, f"{what} {_show(tokens[k])} is too long", line=line_of(k))


def parse_int_tokens(
    path: Path | str,
    tokens: Sequence[bytes] | np.ndarray,
    what: str,
    line_of: Callable[[int], int],
    *,
    allow_negative: bool,
) -> np.ndarray:
    """Parse ASCII decimal tokens to int64, raising DataError at the first bad one.

    ``line_of(k)`` gives the 1-based line of token ``k``, for the error message.
    """
    if len(tokens) == 0:
        return np.empty(0, dtype=np.int64)
    if not isinstance(tokens, np.ndarray):
        _reject_long(path, tokens, what, line_of)
    arr = np.asarray(tokens, dtype=np.bytes_)
    ok = np.char.isdigit(arr) & (np.char.str_len(arr) <= _MAX_DIGITS)
    if not ok.all():
        for k in np.flatnonzero(~ok).tolist():
            if not _is_int(tokens[k], allow_negative):
                reason = _bad_int_reason(tokens[k], what, allow_negative)
                raise DataError(path, reason, line=line_of(k))
    return arr.astype(np.int64)


def parse_float_tokens(
    path: Path | str, tokens: Sequence[bytes] | np.ndarray, what: str, line_of: Callable[[int], int]
) -> np.ndarray:
    """Parse numeric tokens to float64, raising DataError at the first bad one."""
    if len(tokens) == 0:
        return np.empty(0, dtype=np.float64)
    if not isinstance(tokens, np.ndarray):
        _reject_long(path, tokens, what, line_of)
    try:
        return np.asarray(tokens, dtype=np.bytes_).astype(np.float64)
    except (ValueError, OverflowError):
        pass
    for k, token in enumerate(tokens):
        try:
            float(token)
        except ValueError:
            raise DataError(path, f"non-numeric {what} {_show(token)}", line=line_of(k)) from None
    raise DataError(path, f"unparseable {what} values")  # pragma: no cover - float() agreed
