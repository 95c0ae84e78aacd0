"""Versioned, checksummed artifacts: the only contract between the indexer and the service."""

from model_store.errors import CorruptVersion, StoreError, UnsupportedFormat, VersionNotFound
from model_store.manifest import FORMAT_VERSION, FileEntry, Manifest
from model_store.store import Artifact, ModelStore, check_name

__all__ = [
    "FORMAT_VERSION",
    "Artifact",
    "CorruptVersion",
    "FileEntry",
    "Manifest",
    "ModelStore",
    "StoreError",
    "UnsupportedFormat",
    "VersionNotFound",
    "check_name",
]
