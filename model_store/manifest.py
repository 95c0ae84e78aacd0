"""The artifact manifest: what a version holds and how to check it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: The on-disk format this code writes. Readers accept every version up to this one.
FORMAT_VERSION = 2
MANIFEST_NAME = "manifest.json"
#: sha256 of manifest.json, in ``sha256sum -c`` format.
SUMS_NAME = "manifest.sha256"


class FileEntry(BaseModel):
    """One file of a version: its checksum and size in bytes."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Manifest(BaseModel):
    """Everything a reader needs to trust and interpret a version.

    Unknown keys are kept (``extra="allow"``) so that a newer writer of the same
    ``format_version`` can add information without breaking older readers.
    """

    model_config = ConfigDict(extra="allow")

    format_version: int = Field(ge=1)
    version: str
    created_at: str
    dataset: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    bits: int = Field(ge=8)
    libraries: dict[str, str] = Field(default_factory=dict)
    files: dict[str, FileEntry]
