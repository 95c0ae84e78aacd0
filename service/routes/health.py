"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from hashrec.service.routes.deps import StateDep
from hashrec.service.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.head("/healthz", include_in_schema=False, response_model=None)
@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is up."""
    return HealthResponse(status="ok")


@router.head("/readyz", include_in_schema=False, response_model=None)
@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def readyz(state: StateDep) -> HealthResponse | JSONResponse:
    """Ready once a verified model is loaded; otherwise 503 with the reason."""
    if state.loaded is None or state.draining:
        reason = "shutting down" if state.draining else state.public_reason()
        body = HealthResponse(status="not ready", reason=reason)
        return JSONResponse(status_code=503, content=body.model_dump())
    return HealthResponse(status="ready", model_version=state.loaded.model.version)
