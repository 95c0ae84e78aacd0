"""POST /v1/recommend, /v1/recommend/batch and /v1/similar-items."""

from __future__ import annotations

import functools
import hashlib
import time
from typing import Any

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from hashrec.service import metrics
from hashrec.service.cache import InProcessCache
from hashrec.service.routes.deps import json_body, json_body_schema, serving
from hashrec.service.schemas import (
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    SimilarRequest,
    SimilarResponse,
    ValidationErrorResponse,
)
from hashrec.service.state import Loaded, ServiceState
from pydantic import BaseModel

router = APIRouter(prefix="/v1", tags=["recommend"])
ERRORS = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    422: {"model": ValidationErrorResponse},
    503: {"model": ErrorResponse},
}


def _query_route(path: str, response: type[BaseModel], body: type[BaseModel]) -> Any:
    """``router.post`` for a query route whose body is read by ``json_body`` (documented here)."""
    extra = json_body_schema(body)
    return router.post(path, response_model=response, responses=ERRORS, openapi_extra=extra)  # type: ignore[arg-type]


def _items(pairs: list[tuple[str, float]]) -> list[ScoredItem]:
    return [ScoredItem(item_id=item, score=score) for item, score in pairs]


_NO_ROWS = np.empty(0, np.int64)


def _item_rows(loaded: Loaded, ids: list[str], field: str, strict: bool) -> np.ndarray:
    """Item rows of external ids; unknown ones are a 404 when strict, else skipped."""
    if not ids:
        return _NO_ROWS
    rows = loaded.model.item_index.rows(ids)
    if strict and (rows < 0).any():
        unknown = ids[int(np.flatnonzero(rows < 0)[0])]
        raise HTTPException(404, f"{field}: item_id {unknown!r} is not known to model {loaded.version}")
    return rows[rows >= 0]


def _check_bounds(state: ServiceState, body: Any, candidates: int | None) -> None:
    """422 for a ``k`` or ``candidates`` above the service's limits; a request without ``k`` asks
    for the default 20, or for ``HASHREC_MAX_K`` if that is lower."""
    settings = state.settings
    if "k" not in body.model_fields_set:
        body.k = min(body.k, settings.max_k)
    if body.k > settings.max_k:
        raise HTTPException(422, f"k: must be at most {settings.max_k}")
    if candidates is not None and candidates > settings.max_candidates:
        raise HTTPException(422, f"candidates: must be at most {settings.max_candidates}")


def _cache_key(version: str, body: RecommendRequest) -> str:
    # strict is part of the key: a non-strict request caches the popular items as the fallback,
    # which a strict request for the same unknown user must not get (it gets a 404).
    if not body.history and not body.exclude_items:
        flags = f"{int(body.exclude_seen)}{int(body.strict)}"
        return f"rec3:{version}:{body.user_id}:{body.k}:{flags}:{body.candidates}"
    digest = hashlib.blake2b(orjson.dumps(body.model_dump()), digest_size=16)
    return f"rec3:{version}:h:{digest.hexdigest()}"


def _answer(loaded: Loaded, body: RecommendRequest) -> tuple[list[tuple[str, float]], bool]:
    """Compute (pairs, fallback) for one request; raises 404 in strict mode for unknowns."""
    recommender = loaded.recommender
    exclude = _item_rows(loaded, body.exclude_items, "exclude_items", strict=False)
    started = time.perf_counter()
    try:
        user_row = loaded.model.user_index.get(body.user_id) if body.user_id is not None else None
        if user_row is not None:
            return recommender.for_user(
                user_row,
                body.k,
                exclude_seen=body.exclude_seen,
                exclude_items=exclude,
                candidates=body.candidates,
            ), False
        if body.history and not loaded.model.encodes_histories:
            if body.strict:  # the version cannot code a new query: no personal answer for visitors
                raise HTTPException(422, f"history: model {loaded.version} cannot encode visitors")
        elif body.history:
            rows = _item_rows(loaded, body.history, "history", body.strict)
            if len(rows):
                return recommender.for_history(
                    rows,
                    body.k,
                    exclude_seen=body.exclude_seen,
                    exclude_items=exclude,
                    candidates=body.candidates,
                ), False
        if body.strict:
            who = f"user_id {body.user_id!r}" if body.user_id is not None else "an empty history"
            raise HTTPException(404, f"{who} is not known to model {loaded.version}")
        return recommender.popular(body.k, exclude=exclude), True
    finally:
        metrics.STAGE_SEARCH.observe(time.perf_counter() - started)


#: the fields a plain known-user request may have to be answered by ``cached_answer``
_PLAIN_FIELDS = frozenset(("user_id", "k"))


def cached_answer(state: ServiceState, raw: bytes) -> bytes | None:
    """The whole answer body of a plain request (``user_id`` and at most ``k``, every other field
    at its default) held by the in-process cache, or None when the request is anything else.

    The bytes ``recommend`` would send for a hit on the same request (the same key, the same
    splice, the same counters), without a Request object, pydantic or the coalescer: a cached
    answer costs little more than the server's own parse-and-reply. Anything unusual (another
    field, a float ``k``, an id out of bounds, a miss, no model, another cache) returns None, and
    the request takes the full route, which validates it and answers or refuses it.
    """
    loaded, cache = state.loaded, state.cache
    if loaded is None or type(cache) is not InProcessCache:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or not body.keys() <= _PLAIN_FIELDS:
        return None
    user_id, max_k = body.get("user_id"), state.settings.max_k
    k = body.get("k", min(20, max_k))
    if type(user_id) is not str or not 1 <= len(user_id) <= 256 or type(k) is not int or not 1 <= k <= max_k:
        return None
    started = time.perf_counter()
    value = cache.peek(f"rec3:{loaded.version}:{user_id}:{k}:10:None")
    if value is None or not _is_answer_tail(value):
        return None  # the route counts the miss (or the bad entry) when it looks again
    metrics.TALLY.observe(metrics.STAGE_CACHE_GET, time.perf_counter() - started)
    metrics.TALLY.inc(metrics.CACHE_HIT)
    head = orjson.dumps({"user_id": user_id, "model_version": loaded.version, "cached": True})
    return head[:-1] + b"," + value[1:]


def _is_answer_tail(value: bytes) -> bool:
    """Whether a cached value has the shape this route writes (spliced into the answer unparsed)."""
    return value.startswith(b'{"fallback":') and value.endswith(b"]}")


@_query_route("/recommend", RecommendResponse, RecommendRequest)
async def recommend(request: Request) -> Response:
    """Top-k items: Hamming top-C candidates, then exact inner-product rerank.

    A known ``user_id`` uses the user's vector and code; otherwise ``history`` builds a visitor's
    query by the encoder's aggregation rule; otherwise (unknown user, no usable history, or
    neither given) the popular items answer with ``fallback: true`` (or 404 with ``strict: true``).
    """
    state, loaded = serving(request)
    body = await json_body(request, RecommendRequest)
    _check_bounds(state, body, body.candidates)
    key = _cache_key(loaded.version, body)

    async def compute() -> tuple[bytes, bool]:
        started = time.perf_counter()
        cached_value = await state.cache.get(key)
        metrics.STAGE_CACHE_GET.observe(time.perf_counter() - started)
        if cached_value is not None:
            if _is_answer_tail(cached_value):
                metrics.CACHE_HIT.inc()
                return cached_value, True
            metrics.CACHE_ERRORS.inc()  # not an answer (another writer, cut short): a miss
        metrics.CACHE_MISS.inc()
        pairs, fallback = _answer(loaded, body)
        # The cached value is the answer's JSON tail; a hit splices it in without decoding it.
        value = orjson.dumps({"fallback": fallback, "items": [{"item_id": i, "score": s} for i, s in pairs]})
        await state.cache.set(key, value)
        return value, False

    (value, cached), _ = await state.coalescer.run(key, compute)
    # Pre-encoded body (shape = RecommendResponse, which documents it): FastAPI's response-model
    # validation and encoding cost more than the search on small catalogues.
    head = orjson.dumps({"user_id": body.user_id, "model_version": loaded.version, "cached": cached})
    return Response(head[:-1] + b"," + value[1:], media_type="application/json")


@_query_route("/recommend/batch", BatchResponse, BatchRequest)
async def recommend_batch(request: Request) -> BatchResponse:
    """Several known users in one batched search (uncached); unknown users get popular items."""
    state, loaded = serving(request)
    body = await json_body(request, BatchRequest)
    if len(body.user_ids) > state.settings.max_batch:
        raise HTTPException(413, f"user_ids: at most {state.settings.max_batch} users per batch")
    _check_bounds(state, body, None)
    asked = len(body.user_ids) * body.k
    if asked > state.settings.max_batch_results:
        raise HTTPException(
            413,
            f"user_ids: {len(body.user_ids)} users x k {body.k} = {asked} results, over the "
            f"{state.settings.max_batch_results} a batch may ask",
        )
    all_rows = loaded.model.user_index.rows(body.user_ids)
    if body.strict and (all_rows < 0).any():
        unknown_id = body.user_ids[int(np.flatnonzero(all_rows < 0)[0])]
        raise HTTPException(404, f"user_ids: user_id {unknown_id!r} is not known to model {loaded.version}")
    known = [user for user, row in zip(body.user_ids, all_rows, strict=True) if row >= 0]
    started = time.perf_counter()
    answers: dict[str, list[tuple[str, float]]] = {}
    if known:
        rows = all_rows[all_rows >= 0]
        # off the event loop (the kernels release the GIL): a large batch must not hold up the
        # worker's small requests
        found = await anyio.to_thread.run_sync(
            functools.partial(loaded.recommender.for_users, rows, body.k, exclude_seen=body.exclude_seen)
        )
        answers = dict(zip(known, found, strict=True))
    popular = loaded.recommender.popular(body.k) if len(known) < len(body.user_ids) else []
    metrics.STAGE_SEARCH.observe(time.perf_counter() - started)
    results = [
        RecommendResponse(
            user_id=user,
            model_version=loaded.version,
            fallback=user not in answers,
            items=_items(answers.get(user, popular)),
        )
        for user in body.user_ids
    ]
    return BatchResponse(model_version=loaded.version, results=results)


@_query_route("/similar-items", SimilarResponse, SimilarRequest)
async def similar_items(request: Request) -> SimilarResponse:
    """Items nearest to an item: Hamming candidates, cosine rerank; the item itself excluded."""
    state, loaded = serving(request)
    body = await json_body(request, SimilarRequest)
    _check_bounds(state, body, body.candidates)
    row = loaded.model.item_index.get(body.item_id)
    if row is None:
        raise HTTPException(404, f"item_id {body.item_id!r} is not known to model {loaded.version}")
    pairs = loaded.recommender.similar(row, body.k, candidates=body.candidates)
    return SimilarResponse(item_id=body.item_id, model_version=loaded.version, items=_items(pairs))
