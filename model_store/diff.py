"""What changed between two versions: config, metrics, dataset, code width, libraries, files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hashrec.model_store.manifest import Manifest

#: Manifest sections compared, in report order.
SECTIONS = ("format_version", "bits", "dataset", "config", "metrics", "libraries", "files")


@dataclass(frozen=True)
class Change:
    """One value that differs between version ``a`` and version ``b``.

    Parameters
    ----------
    section : str
        Manifest section (one of ``SECTIONS``).
    key : str
        Dotted path inside the section (a file name for ``files``; empty for scalar sections).
    old, new : object
        The value in ``a`` and in ``b``; None where the key is absent.
    """

    section: str
    key: str
    old: Any
    new: Any

    @property
    def path(self) -> str:
        """``section.key``, or ``section`` for a scalar section."""
        return f"{self.section}.{self.key}" if self.key else self.section

    @property
    def delta(self) -> float | None:
        """``new - old`` when both are numbers, else None."""
        numbers = [v for v in (self.old, self.new) if isinstance(v, int | float) and not isinstance(v, bool)]
        return self.new - self.old if len(numbers) == 2 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {"path": self.path, "old": self.old, "new": self.new}
        if self.delta is not None:
            out["delta"] = self.delta
        return out


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": leaf}``; lists and scalars are leaves."""
    if not isinstance(value, Mapping):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def diff_manifests(a: Manifest, b: Manifest) -> list[Change]:
    """Every value that differs between two manifests, section by section.

    Parameters
    ----------
    a, b : Manifest
        The older and the newer version (the order only sets what is "old").

    Returns
    -------
    list of Change
        Sorted by section (``SECTIONS`` order) then key. Files are compared by sha256 and size;
        an added or removed file has ``old`` or ``new`` None.
    """
    changes: list[Change] = []
    for section in SECTIONS:
        if section == "files":
            old_files = {name: entry.model_dump() for name, entry in a.files.items()}
            new_files = {name: entry.model_dump() for name, entry in b.files.items()}
            for name in sorted(old_files.keys() | new_files.keys()):
                if old_files.get(name) != new_files.get(name):
                    changes.append(Change(section, name, old_files.get(name), new_files.get(name)))
            continue
        old_flat = flatten(getattr(a, section))
        new_flat = flatten(getattr(b, section))
        for key in sorted(old_flat.keys() | new_flat.keys()):
            if old_flat.get(key) != new_flat.get(key):
                changes.append(Change(section, key, old_flat.get(key), new_flat.get(key)))
    return changes
