"""Errors raised by the model store."""


class StoreError(RuntimeError):
    """The store or one of its versions cannot be used; the message says why."""


class VersionNotFound(StoreError):
    """A named version or alias does not exist."""


class CorruptVersion(StoreError):
    """A version failed verification (missing file, size or checksum mismatch, bad manifest)."""


class UnsupportedFormat(StoreError):
    """A version was written in a format newer than this reader knows."""
