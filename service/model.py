"""A loaded, servable model: arrays (mmapped), id maps and the binary item index."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from model_store import Artifact, CorruptVersion
from model_store.schema import ITEM_INDEX_FILE, check_recommender


def build_binary_index(item_codes: np.ndarray) -> faiss.IndexBinary:
    """Exact Hamming index over packed uint8 item codes."""
    index = faiss.IndexBinaryFlat(item_codes.shape[1] * 8)
    index.add(np.ascontiguousarray(item_codes, dtype=np.uint8))
    return index


@dataclass
class ServingModel:
    """Everything one version needs to answer queries.

    Parameters
    ----------
    version : str
        Version name, reported with every answer.
    arrays : mapping of str to ndarray
        The recommender arrays named in ``model_store.schema.RECOMMENDER_ARRAYS``.
    binary_index : faiss.IndexBinary
        Hamming index over ``item_codes``, ids equal to item rows.
    manifest : dict
        The manifest summary (empty for a model that was never published).
    """

    version: str
    arrays: Mapping[str, np.ndarray]
    binary_index: faiss.IndexBinary
    manifest: dict[str, Any] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        a = self.arrays
        self.user_ids: np.ndarray = a["user_ids"]
        self.item_ids: np.ndarray = a["item_ids"]
        self.user_embeddings: np.ndarray = a["user_embeddings"]
        self.item_embeddings: np.ndarray = a["item_embeddings"]
        self.user_codes: np.ndarray = a["user_codes"]
        self.item_codes: np.ndarray = a["item_codes"]
        self.seen_indptr: np.ndarray = np.asarray(a["seen_indptr"])
        self.seen_indices: np.ndarray = a["seen_indices"]
        self.item_popularity: np.ndarray = a["item_popularity"]
        self.user_index: dict[str, int] = {uid: row for row, uid in enumerate(self.user_ids.tolist())}
        self.item_index: dict[str, int] = {iid: row for row, iid in enumerate(self.item_ids.tolist())}
        self.bits = self.item_codes.shape[1] * 8
        self.code_projection: np.ndarray | None = a.get("code_projection")
        quantizer = self.manifest.get("config", {}).get("quantizer", {})
        self.code_transform: str = quantizer.get("transform", "mips")
        popularity = np.asarray(self.item_popularity)
        # Most popular first; enough for any k plus exclusions, without a full sort per request.
        self.popular_order = np.argsort(-popularity, kind="stable")[:20_000].astype(np.int64)

    @classmethod
    def from_arrays(cls, version: str, arrays: Mapping[str, np.ndarray]) -> ServingModel:
        """Serve arrays held in memory (the indexer evaluates a model this way before publishing)."""
        return cls(version=version, arrays=arrays, binary_index=build_binary_index(arrays["item_codes"]))

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> ServingModel:
        """Serve a verified artifact: arrays mmapped, the index read after its checksum matched."""
        arrays = dict(check_recommender(artifact))
        if artifact.has("code_projection.npy"):
            arrays["code_projection"] = artifact.array("code_projection")
        # mmap: several workers share the page cache instead of one copy each.
        flag = getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)
        index = faiss.read_index_binary(str(artifact.file_path(ITEM_INDEX_FILE)), flag)
        if index.ntotal != len(arrays["item_ids"]) or index.d != artifact.manifest.bits:
            raise CorruptVersion(f"version {artifact.version}: {ITEM_INDEX_FILE} disagrees with item_codes")
        summary = artifact.manifest.model_dump(exclude={"files"})
        return cls(version=artifact.version, arrays=arrays, binary_index=index, manifest=summary)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def seen(self, user_row: int) -> np.ndarray:
        """Item rows the user interacted with in training."""
        return self.seen_indices[self.seen_indptr[user_row] : self.seen_indptr[user_row + 1]]
