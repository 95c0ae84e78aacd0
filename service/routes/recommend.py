"""POST /v1/recommend."""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException

from service.routes.deps import LoadedDep, StateDep
from service.schemas import ErrorResponse, RecommendRequest, RecommendResponse, ScoredItem
from service.state import Loaded

router = APIRouter(prefix="/v1", tags=["recommend"])


def recommend_items(loaded: Loaded, user_row: int, k: int) -> list[tuple[str, float]]:
    """Hamming candidates then exact rerank for one known user, training items excluded."""
    result = loaded.searcher.search_users(np.array([user_row]), k)
    items, scores = result.items[0], result.scores[0]
    valid = items >= 0
    item_ids = loaded.model.item_ids[items[valid]].tolist()
    return list(zip(item_ids, scores[valid].astype(float).tolist(), strict=True))


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def recommend(body: RecommendRequest, state: StateDep, loaded: LoadedDep) -> RecommendResponse:
    """Top-k items for a known user: Hamming top-C candidates, exact float rerank."""
    model = loaded.model
    if body.k > state.settings.max_k:
        raise HTTPException(422, f"k: must be at most {state.settings.max_k}")
    user_row = model.user_index.get(body.user_id)
    if user_row is None:
        raise HTTPException(404, f"user_id {body.user_id!r} is not known to model {model.version}")
    key = f"rec:{model.version}:{body.user_id}:{body.k}"
    cached = await state.cache.get(key)
    if cached is not None:
        pairs = orjson.loads(cached)
    else:
        pairs = recommend_items(loaded, user_row, body.k)
        await state.cache.set(key, orjson.dumps(pairs))
    return RecommendResponse(
        user_id=body.user_id,
        model_version=model.version,
        cached=cached is not None,
        items=[ScoredItem(item_id=item, score=score) for item, score in pairs],
    )
