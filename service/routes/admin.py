"""POST /admin/reload, behind a bearer token; absent when no token is configured."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from hashrec.model_store import StoreError, VersionNotFound
from hashrec.model_store.names import check_name
from hashrec.service.routes.deps import StateDep, json_body, json_body_schema, read_body
from hashrec.service.schemas import ErrorResponse, ReloadRequest, ReloadResponse, ValidationErrorResponse
from hashrec.service.state import ReloadRefused

router = APIRouter(prefix="/admin", tags=["admin"])


async def require_admin(state: StateDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    token = state.settings.admin_token
    if token is None:
        raise HTTPException(404, "admin routes are disabled: set HASHREC_ADMIN_TOKEN to enable them")
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:  # auth schemes ignore case (RFC 9110)
        raise HTTPException(
            401, "authorization: a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    given = credentials.encode()
    if not secrets.compare_digest(given, token.get_secret_value().encode()):
        raise HTTPException(403, "authorization: the token is not valid")


@router.post(
    "/reload",
    response_model=ReloadResponse,
    dependencies=[Depends(require_admin)],
    openapi_extra={"requestBody": {**json_body_schema(ReloadRequest)["requestBody"], "required": False}},
    responses={
        400: {"model": ErrorResponse},
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        409: {"model": ErrorResponse},
        422: {"model": ValidationErrorResponse},
    },
)
async def reload(request: Request, state: StateDep) -> ReloadResponse:
    """Verify, load and smoke-test a version, then swap it in; 409 (old model kept) if refused.

    The body is read here, after the token check, so a caller without the token learns nothing
    from parse errors. An invalid version name is a 422, a version the store lacks a 404.
    """
    raw = await read_body(request)
    body = await json_body(request, ReloadRequest) if raw.strip() else None
    wanted = body.version if body else None
    if wanted is not None:
        try:
            check_name(wanted, "version or alias")
        except StoreError as err:
            raise HTTPException(422, f"version: {err}") from None
    previous = state.loaded.version if state.loaded else None
    try:
        loaded = await state.reload(wanted)
    except ReloadRefused as err:
        if isinstance(err.__cause__, VersionNotFound):
            raise HTTPException(404, f"version: {wanted!r} is not in the store") from None
        raise HTTPException(409, f"reload refused, still serving {previous}: {err}") from None
    return ReloadResponse(model_version=loaded.version, previous_version=previous)
