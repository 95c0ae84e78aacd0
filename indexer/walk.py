"""The compact default: the walk scorer (``retrieval.walk``) and codes learned for it.

Offline this module chooses the walk's degree exponents on a holdout of the training data,
computes the walk's top-k of every user (the teacher of the codes), and learns 1-bit codes whose
Hamming top-C holds that top-k: a projection of each side's spectral features (the closed form's
leading singular vectors, ``encoders.closed_form``) trained by ``quantizers.learned`` on the walk's
ranking. Only the item codes and each item's share of a query code are published; the features,
like the teacher's scores, stay here. There is no user table: a query is its history.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from hashrec.indexer.data.split import holdout
from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig
from hashrec.indexer.quantizers import Quantizer
from hashrec.indexer.ranking_metrics import recall_ndcg
from hashrec.indexer.walk_codes import CodeTuning, tune_codes
from hashrec.retrieval.query_codes import mips_augment, pack_signs
from hashrec.retrieval.topk import top_k
from hashrec.retrieval.walk import WalkExponents, degree_weights

log = logging.getLogger(__name__)

#: Exponent grid searched on the holdout: (user a, history b, item c); GF-CF's linear filter is
#: (1, 0.5, 0.5).
EXPONENT_GRID: tuple[tuple[float, float, float], ...] = tuple(
    itertools.product((0.5, 0.75, 1.0), (0.5, 0.75), (0.25, 0.5))
)


@dataclass(frozen=True)
class WalkFitConfig:
    """feature_dim: rank of the spectral features the codes are projected from (0: up to 1,536,
    a quarter of the spectrum); feature_power: their spectral weight p; teacher_k: the walk's
    top-k each user's codes learn to retrieve; codes: the end-to-end tuning of the learned
    codes (``indexer.walk_codes``; ``CodeTuning(epochs=0)`` keeps the projection's)."""

    exponents: WalkExponents | None = None
    feature_dim: int = 0
    feature_power: float = 0.5
    teacher_k: int = 20
    val_fraction: float = 0.1  # as the closed form's holdout
    max_val_users: int = 5000
    seed: int = 0
    codes: CodeTuning = field(default_factory=CodeTuning)
    progress: bool = False


def walk_operator(train: sp.csr_matrix, exponents: WalkExponents) -> tuple[sp.csr_matrix, np.ndarray]:
    """(D_I^-b R^T D_U^-a, d_I^-c): a user's scores are ``(r_u @ left) @ R * right``."""
    r = sp.csr_matrix(train, dtype=np.float32)
    user_w = degree_weights(np.diff(r.indptr), exponents.user)
    item_degree = np.bincount(r.indices, minlength=r.shape[1])
    left = sp.diags(degree_weights(item_degree, exponents.history)) @ r.T @ sp.diags(user_w)
    return left.tocsr(), degree_weights(item_degree, exponents.item)


def walk_scores(train: sp.csr_matrix, rows: np.ndarray, left: sp.csr_matrix, right: np.ndarray) -> np.ndarray:
    """Dense float32 walk scores of users ``rows`` (their training items not masked)."""
    r = sp.csr_matrix(train, dtype=np.float32)
    return np.asarray(((r[rows] @ left) @ r).toarray() * right[None, :], dtype=np.float32)


def walk_top_k(train: sp.csr_matrix, exponents: WalkExponents, k: int, batch_size: int = 2048) -> np.ndarray:
    """Every user's walk top-k item rows (n_users, k), training items excluded."""
    r = sp.csr_matrix(train, dtype=np.float32)
    k = max(0, min(k, r.shape[1] - 1))
    left, right = walk_operator(r, exponents)
    out = np.empty((r.shape[0], k), dtype=np.int64)
    for start in range(0, r.shape[0], batch_size):
        rows = np.arange(start, min(start + batch_size, r.shape[0]))
        scores = walk_scores(r, rows, left, right)
        seen_r, seen_c = r[rows].nonzero()
        scores[seen_r, seen_c] = -np.inf
        out[rows] = top_k(scores, k)[0] if k else out[rows]
    return out


def choose_exponents(train: sp.csr_matrix, cfg: WalkFitConfig) -> tuple[WalkExponents, dict[str, float]]:
    """The grid point with the best holdout Recall@20 (NDCG@20 breaks ties), and every score."""
    fit, validation = holdout(train, cfg.val_fraction, cfg.seed)
    users = np.flatnonzero(np.diff(validation.indptr) > 0)
    if len(users) > cfg.max_val_users:
        users = np.sort(np.random.default_rng(cfg.seed).choice(users, cfg.max_val_users, replace=False))
    if not len(users) or fit.shape[1] < 2:
        return WalkExponents(), {}
    k = min(20, fit.shape[1] - 1)
    scored: dict[tuple[float, float, float], tuple[float, float]] = {}
    for a, b, c in EXPONENT_GRID:
        left, right = walk_operator(fit, WalkExponents(a, b, c))
        scores = walk_scores(fit, users, left, right)
        seen_r, seen_c = fit[users].nonzero()
        scores[seen_r, seen_c] = -np.inf
        metrics = recall_ndcg(top_k(scores, k)[0], validation, users, k)
        scored[a, b, c] = (metrics[f"recall@{k}"], metrics[f"ndcg@{k}"])
    best = max(scored, key=lambda key: (round(scored[key][0], 4), scored[key][1]))
    report = {f"a{a:g}/b{b:g}/c{c:g}": round(v[0], 5) for (a, b, c), v in scored.items()}
    log.info("walk exponents on the holdout %s -> %s", report, best)
    return WalkExponents(*best), report


def spectral_features(train: sp.csr_matrix, cfg: WalkFitConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user features, item features, history-item features), float32: users = R @ history side."""
    limit = max(1, min(train.shape) - 1)
    rank = cfg.feature_dim or min(1536, max(8, min(train.shape) // 4))
    closed_form = ClosedForm(ClosedFormConfig(dim=min(rank, limit), power=cfg.feature_power, seed=cfg.seed))
    singular, basis = closed_form.spectrum(train, min(rank, limit))
    half = (np.clip(singular, 0, None) / max(float(singular[0]), 1e-12)) ** (cfg.feature_power / 2)
    degree = np.maximum(np.bincount(sp.csr_matrix(train).indices, minlength=train.shape[1]), 1.0)
    items = np.ascontiguousarray(basis * (degree**0.5)[:, None] * half, dtype=np.float32)
    history = np.ascontiguousarray(basis * (degree**-0.5)[:, None] * half, dtype=np.float32)
    users = np.ascontiguousarray(sp.csr_matrix(train, dtype=np.float32) @ history, dtype=np.float32)
    return users, items, history


def query_weights(history_features: np.ndarray, quantizer: Quantizer) -> np.ndarray:
    """Each item's float32 share of a query's pre-code: the projection of its history features.

    A user's code is ``sign(augment(u) @ W)`` with u = sum of its history's features; augmenting
    divides by |u| and appends 0, so it equals ``sign(sum_j features_j @ W[:dim])``.
    """
    return np.ascontiguousarray(history_features @ quantizer.projection[: history_features.shape[1]])


def int8_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``weights`` as int8 rows and a float32 scale per row (``weights ~= rows * scale``, each
    entry within half a step of its row's largest / 127)."""
    peak = np.abs(weights).max(axis=1) if weights.size else np.zeros(len(weights))
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    rows = np.clip(np.rint(weights / scale[:, None]), -127, 127).astype(np.int8)
    return rows, scale


def fit_walk(
    train: sp.csr_matrix, quantizer: Quantizer, cfg: WalkFitConfig
) -> tuple[dict[str, np.ndarray], WalkExponents, dict[str, object]]:
    """The walk model's own arrays (item codes, query weights, the item -> user graph), its
    exponents, and a record of the fit (timings, the holdout search)."""
    from hashrec.indexer.quantizers.learned import LearnedQuantizer

    timings: dict[str, float] = {}
    started = time.perf_counter()
    search: dict[str, float] = {}
    exponents = cfg.exponents
    if exponents is None:
        exponents, search = choose_exponents(train, cfg)
    timings["exponent_search"] = time.perf_counter() - started
    mark = time.perf_counter()
    users, items, history = spectral_features(train, cfg)
    timings["features"] = time.perf_counter() - mark
    mark = time.perf_counter()
    distilled = (
        quantizer if isinstance(quantizer, LearnedQuantizer) and quantizer.positives != "train" else None
    )
    learned = distilled is not None
    if distilled is not None:
        teacher = walk_top_k(train, exponents, cfg.teacher_k)
        timings["teacher"] = time.perf_counter() - mark
        mark = time.perf_counter()
        _, item_codes = distilled.encode(users, items, train, teacher=teacher)
    else:
        _, item_codes = quantizer.encode(users, items, train)
    timings["codes"] = time.perf_counter() - mark
    weights = query_weights(history, quantizer)
    if learned and cfg.codes.epochs:
        mark = time.perf_counter()
        item_pre = mips_augment(users, items)[1] @ quantizer.projection
        weights, item_pre = tune_codes(train, weights, item_pre, teacher, cfg.codes, cfg.progress)
        item_codes = pack_signs(item_pre)
        timings["code_tuning"] = time.perf_counter() - mark
    weights, scale = int8_rows(weights)
    by_item = sp.csc_matrix(train)
    by_item.sort_indices()
    arrays = {
        "item_codes": item_codes,
        "query_weights": weights,
        "query_scale": scale,
        "item_users_indptr": by_item.indptr.astype(np.int64),
        "item_users_indices": by_item.indices.astype(np.int32),
    }
    record = {
        "encoder": "walk",
        "exponents": asdict(exponents),
        "exponent_search": search,
        "feature_dim": int(history.shape[1]),
        "feature_power": cfg.feature_power,
        "teacher_k": cfg.teacher_k,
        "code_tuning": asdict(cfg.codes) if learned else None,
        "seconds": {name: round(value, 1) for name, value in timings.items()},
    }
    return arrays, exponents, record
