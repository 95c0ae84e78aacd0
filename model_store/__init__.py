"""Versioned, checksummed artifacts: the only contract between the indexer and the service."""

from hashrec.model_store.diff import Change
from hashrec.model_store.errors import CorruptVersion, StoreError, UnsupportedFormat, VersionNotFound
from hashrec.model_store.manifest import FORMAT_VERSION, FileEntry, Manifest
from hashrec.model_store.names import check_name
from hashrec.model_store.refs import RefEvent
from hashrec.model_store.store import Artifact, GcReport, ModelStore

__all__ = [
    "FORMAT_VERSION",
    "Artifact",
    "Change",
    "CorruptVersion",
    "FileEntry",
    "GcReport",
    "Manifest",
    "ModelStore",
    "RefEvent",
    "StoreError",
    "UnsupportedFormat",
    "VersionNotFound",
    "check_name",
]
