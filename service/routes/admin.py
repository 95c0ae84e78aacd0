"""POST /admin/reload, behind a bearer token; absent when no token is configured."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException

from service.routes.deps import StateDep
from service.schemas import ErrorResponse, ReloadRequest, ReloadResponse, ValidationErrorResponse
from service.state import ReloadRefused

router = APIRouter(prefix="/admin", tags=["admin"])


async def require_admin(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    token = state.settings.admin_token
    if token is None:
        raise HTTPException(404, "admin routes are disabled: set HASHREC_ADMIN_TOKEN to enable them")
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(
            401, "authorization: a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    given = authorization.removeprefix("Bearer ").encode()
    if not secrets.compare_digest(given, token.get_secret_value().encode()):
        raise HTTPException(403, "authorization: the token is not valid")


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        422: {"model": ValidationErrorResponse},
    },
)
async def reload(state: StateDep, body: ReloadRequest | None = None) -> ReloadResponse:
    """Verify, load and smoke-test a version, then swap it in; 409 (old model kept) if refused."""
    previous = state.loaded.version if state.loaded else None
    try:
        loaded = await state.reload(body.version if body else None)
    except ReloadRefused as err:
        raise HTTPException(409, f"reload refused, still serving {previous}: {err}") from None
    return ReloadResponse(model_version=loaded.version, previous_version=previous)
