"""Shared route dependencies.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool, a
thread hand-off per dependency per request that cost more than the whole cached answer.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from hashrec.service.state import Loaded, ServiceState
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

BodyModel = TypeVar("BodyModel", bound=BaseModel)


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_loaded(state: Annotated[ServiceState, Depends(get_state)]) -> Loaded:
    """The model serving this request; 503 while none is loaded."""
    loaded = state.loaded
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.public_reason()}")
    return loaded


StateDep = Annotated[ServiceState, Depends(get_state)]
LoadedDep = Annotated[Loaded, Depends(get_loaded)]


class Serving(NamedTuple):
    """The service state and the model serving this request, resolved in one dependency."""

    state: ServiceState
    loaded: Loaded


def serving(request: Request) -> Serving:
    """State and model for the query routes in one step; 503 while no model is loaded."""
    state: ServiceState = request.app.state.service
    loaded = state.loaded
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.public_reason()}")
    return Serving(state, loaded)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def read_body(request: Request) -> bytes:
    """The request's body bytes (Starlette keeps them for later reads)."""
    try:
        return await request.body()
    except ClientDisconnect:  # nobody reads the answer; a 400, not a 500 with a traceback
        raise HTTPException(400, "body: the client disconnected before sending all of it") from None


async def json_body(request: Request, model: type[BodyModel]) -> BodyModel:
    """The request body validated by ``model`` straight from its JSON bytes.

    The hot query routes read their body with this instead of a declared body parameter:
    FastAPI's path (``json.loads``, a content-type parse per request, then validation of the
    Python objects and dependency solving) cost more than a cached answer. Errors are the same
    ``RequestValidationError`` (422 naming the field) FastAPI raises, locations under ``body``.
    """
    raw = await read_body(request)
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    if not _is_json(request.headers.get("content-type")):
        message = "content-type must be application/json"
        raise RequestValidationError([{"type": "content_type", "loc": ("body",), "msg": message}])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`json_body` (FastAPI cannot see it)."""
    schema = {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}
    return {"requestBody": schema}
