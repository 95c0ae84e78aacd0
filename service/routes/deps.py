"""Shared route dependencies.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool, a
thread hand-off per dependency per request that cost more than the whole cached answer.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request

from service.state import Loaded, ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_loaded(state: Annotated[ServiceState, Depends(get_state)]) -> Loaded:
    """The model serving this request; 503 while none is loaded."""
    loaded = state.loaded
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.not_ready_reason}")
    return loaded


StateDep = Annotated[ServiceState, Depends(get_state)]
LoadedDep = Annotated[Loaded, Depends(get_loaded)]


class Serving(NamedTuple):
    """The service state and the model serving this request, resolved in one dependency."""

    state: ServiceState
    loaded: Loaded


async def get_serving(request: Request) -> Serving:
    """State and model for the query routes in one step (one dependency less per request); 503
    while no model is loaded."""
    state: ServiceState = request.app.state.service
    loaded = state.loaded
    if loaded is None:
        raise HTTPException(503, f"no model loaded: {state.not_ready_reason}")
    return Serving(state, loaded)


ServingDep = Annotated[Serving, Depends(get_serving)]
