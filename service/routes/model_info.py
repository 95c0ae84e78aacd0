"""GET /v1/model: the serving version and its manifest summary."""

from __future__ import annotations

from fastapi import APIRouter
from hashrec.service.routes.deps import LoadedDep
from hashrec.service.schemas import ErrorResponse, ModelResponse

router = APIRouter(tags=["model"])


@router.head("/v1/model", include_in_schema=False, response_model=None)
@router.get("/v1/model", response_model=ModelResponse, responses={503: {"model": ErrorResponse}})
async def model_info(loaded: LoadedDep) -> ModelResponse:
    """The serving version, its manifest summary (files omitted) and when it was loaded."""
    model = loaded.model
    return ModelResponse(
        model_version=model.version,
        loaded_at=model.loaded_at,
        users=model.n_users,
        items=model.n_items,
        bits=model.bits,
        manifest=model.manifest,
    )
