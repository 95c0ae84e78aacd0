"""The indexer job: train, quantize, evaluate, publish."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict
from importlib import metadata
from typing import TYPE_CHECKING

import faiss
import numpy as np
import scipy.sparse as sp
from hashrec.indexer import quantizers
from hashrec.indexer.config import IndexConfig
from hashrec.indexer.data.split import holdout
from hashrec.indexer.evaluation import evaluate_model
from hashrec.indexer.quantizers import Quantizer
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel, build_binary_index, index_kind, quantize_int8, tune_nprobe
from hashrec.retrieval.schema import ITEM_INDEX_FILE

if TYPE_CHECKING:
    from hashrec.indexer.data import Interactions

log = logging.getLogger(__name__)


def seen_csr(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64, indices int32) of each user's training items, sorted."""
    csr = sp.csr_matrix(train)
    csr.sort_indices()
    return csr.indptr.astype(np.int64), csr.indices.astype(np.int32)


def make_quantizer(cfg: IndexConfig) -> Quantizer:
    """The configured code learner (see ``indexer.quantizers.QUANTIZERS``)."""
    q = cfg.quantizer
    return quantizers.make_quantizer(q.name, q.bits, seed=cfg.seed, transform=q.transform, device=cfg.device)


def auto_batch_size(n_interactions: int) -> int:
    """About 50 BPR steps per epoch: large batches keep CPU epochs short (LightGCN propagates the
    whole graph once per step), small data still gets enough steps."""
    return int(min(16_384, max(1_024, n_interactions // 50)))


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an artifact."""
    versions = {"python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__}
    for name in ("torch", "hashrec", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def train_embeddings(
    data: Interactions, cfg: IndexConfig
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Fit the configured encoder; returns (users, items, encoder config)."""
    e = cfg.encoder
    if e.name == "gfcf":  # training-free, no torch
        from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig

        closed_form = ClosedForm(ClosedFormConfig(dim=e.dim, power=e.spectral_power, seed=cfg.seed))
        embeddings = closed_form.fit(data.train)
        return embeddings.users, embeddings.items, {**closed_form.config(), "history": closed_form.history}
    from hashrec.indexer.encoders.models import MFBPR, BPRConfig, LightGCN, LightGCNConfig

    training = BPRConfig(
        dim=e.dim or 64,
        epochs=e.epochs,
        batch_size=e.batch_size or auto_batch_size(int(data.train.nnz)),
        lr=e.lr or (1e-2 if e.name == "lightgcn" else 5e-3),
        reg=e.reg,
        seed=cfg.seed,
        eval_every=e.eval_every,
        patience=e.patience,
        device=cfg.device,
        progress=cfg.progress,
        compression=cfg.compression.method,
        budget=cfg.compression.budget,
    )
    encoder = (
        LightGCN(LightGCNConfig(**asdict(training), layers=e.layers))
        if e.name == "lightgcn"
        else MFBPR(training)
    )
    fit, validation = (
        holdout(data.train, e.val_fraction, cfg.seed) if e.val_fraction > 0 else (data.train, None)
    )
    embeddings = encoder.fit(fit, validation)
    return (
        embeddings.users,
        embeddings.items,
        {**encoder.config(), "table": encoder.table, "history": encoder.history},
    )


def recommender_arrays(
    data: Interactions, users: np.ndarray, items: np.ndarray, quantizer: Quantizer
) -> dict[str, np.ndarray]:
    """The arrays of retrieval.schema.RECOMMENDER_ARRAYS for trained embeddings."""
    return serving_arrays(data.train, users, items, quantizer, data.user_ids, data.item_ids)


def serving_arrays(
    train: sp.csr_matrix,
    users: np.ndarray,
    items: np.ndarray,
    quantizer: Quantizer,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """RECOMMENDER_ARRAYS from a training matrix, vectors and a quantizer (which is fitted here);
    ids default to ``u<row>`` and ``i<row>``."""
    user_codes, item_codes = quantizer.encode(users, items, train)
    return {
        **graph_arrays(train, user_ids, item_ids),
        "user_embeddings": users.astype(np.float32),
        "item_embeddings": items.astype(np.float32),
        "user_codes": user_codes,
        "item_codes": item_codes,
        "code_projection": quantizer.projection,
    }


def id_array(ids: np.ndarray | None, prefix: str, n: int) -> np.ndarray:
    """Ids as UTF-8 bytes (format 2: one byte an ASCII character, not four); ``prefix<row>`` by default."""
    values = np.asarray(ids if ids is not None else [f"{prefix}{i}" for i in range(n)], dtype=str)
    return np.char.encode(values, "utf-8") if len(values) else np.zeros(0, dtype="S1")


def graph_arrays(
    train: sp.csr_matrix, user_ids: np.ndarray | None = None, item_ids: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The arrays every layout holds besides the codes: ids, each user's training items, popularity."""
    indptr, indices = seen_csr(train)
    n_users, n_items = train.shape
    return {
        "user_ids": id_array(user_ids, "u", n_users),
        "item_ids": id_array(item_ids, "i", n_items),
        "seen_indptr": indptr,
        "seen_indices": indices,
        "item_popularity": np.asarray(train.sum(axis=0)).ravel().astype(np.int64),
    }


def walk_model(
    data: Interactions, cfg: IndexConfig, quantizer: Quantizer
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The walk layout's arrays and the config entries its service reads (layout, exponents)."""
    from hashrec.indexer.walk import WalkFitConfig, fit_walk
    from hashrec.indexer.walk_codes import CodeTuning

    fit_cfg = WalkFitConfig(
        feature_dim=cfg.encoder.dim,
        seed=cfg.seed,
        codes=CodeTuning(seed=cfg.seed, device=cfg.device),
        progress=cfg.progress,
    )
    own, exponents, record = fit_walk(data.train, quantizer, fit_cfg)
    arrays = {**graph_arrays(data.train, data.user_ids, data.item_ids), **own}
    return arrays, {"layout": "walk", "walk": asdict(exponents), "encoder_config": record}


def item_index(
    arrays: dict[str, np.ndarray], cfg: IndexConfig, user_codes: np.ndarray
) -> tuple[faiss.IndexBinary, dict[str, object]]:
    """The binary item index for the catalogue size (``cfg.serving.binary_index``), and what was chosen.

    A binary IVF gets the smallest power-of-two nprobe whose Hamming top-C (C = ``cfg.serving.candidates``)
    holds >= 0.95 of the exact flat top-C for up to 500 training users' codes.
    """
    codes = arrays["item_codes"]
    index = build_binary_index(codes, cfg.serving.binary_index, nprobe=1, seed=cfg.seed)
    info: dict[str, object] = {"kind": index_kind(index)}
    if info["kind"] == "ivf":
        users = user_codes
        sample = np.random.default_rng(cfg.seed).permutation(len(users))[:500]
        k = min(cfg.serving.candidates, len(codes))
        nprobe, recall = tune_nprobe(index, codes, users[np.sort(sample)], k, target=0.95)
        info.update(nlist=int(index.nlist), nprobe=nprobe, recall_of_flat_top_c=round(recall, 4))
    return index, info


def build_index(
    data: Interactions, store: ModelStore, cfg: IndexConfig, data_options: dict[str, object] | None = None
) -> dict[str, object]:
    """Train, quantize, evaluate on the test split and publish; returns version and metrics.

    ``data_options`` (path, format, split, seed) are recorded so ``hashrec evaluate`` can
    rebuild the same split.
    """
    started = time.perf_counter()
    quantizer = make_quantizer(cfg)
    if cfg.encoder.name == "walk":
        arrays, model_config = walk_model(data, cfg, quantizer)
        train_seconds = time.perf_counter() - started
        # the query codes of up to 500 users, for tuning an IVF index's nprobe
        probe = ServingModel.from_arrays("unpublished", arrays, manifest={"config": model_config})
        walk = probe.walk
        if walk is None:  # from_arrays reads the layout from model_config, which says walk
            raise RuntimeError("the walk model was built without its walk scorer")
        sample = np.random.default_rng(cfg.seed).permutation(probe.n_users)[:500]
        user_codes = np.vstack([walk.query_code(probe.seen(int(u))) for u in np.sort(sample)])
    else:
        users, items, encoder_config = train_embeddings(data, cfg)
        train_seconds = time.perf_counter() - started
        arrays = recommender_arrays(data, users, items, quantizer)
        if cfg.serving.rerank_float16:
            arrays["item_embeddings_f16"] = arrays["item_embeddings"].astype(np.float16)
        if cfg.serving.rerank_int8:
            codes8, scale8 = quantize_int8(arrays["item_embeddings"])
            arrays["item_embeddings_i8"], arrays["item_embeddings_i8_scale"] = codes8, scale8
        user_codes = arrays["user_codes"]
        model_config = {
            # method, budget, rows and real parameter count of the embedding tables
            **({"table": encoder_config["table"]} if "table" in encoder_config else {}),
            "encoder_config": encoder_config,
        }
    index, index_info = item_index(arrays, cfg, user_codes)
    model = ServingModel.from_arrays(
        "unpublished", arrays, binary_index=index, manifest={"config": model_config}
    )
    metrics = evaluate_model(model, data.test, candidates=cfg.serving.candidates, ks=(20,))
    metrics["train_seconds"] = round(train_seconds, 1)
    index_bytes = faiss.serialize_index_binary(model.binary_index).tobytes()
    version = store.publish(
        arrays,
        {ITEM_INDEX_FILE: index_bytes},
        bits=cfg.quantizer.bits,
        dataset={
            "source": data.source,
            "split": data.split,
            "fingerprint": data.fingerprint(),
            "users": data.n_users,
            "items": data.n_items,
            "train_interactions": int(data.train.nnz),
            "test_interactions": int(data.test.nnz),
            "options": data_options or {},
        },
        config={
            **cfg.record(),
            **model_config,
            "quantizer": quantizer.config(),
            "item_index": index_info,
        },
        metrics=metrics,
        libraries=library_versions(),
    )
    return {"version": version, "metrics": metrics}
