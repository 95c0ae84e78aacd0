"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.routes import health, recommend
from service.settings import Settings
from service.state import make_state

log = logging.getLogger(__name__)


def _field_name(loc: tuple[object, ...]) -> str:
    """'body.k' -> 'k'; the body itself stays 'body'."""
    parts = [str(p) for p in loc if p != "body"] or ["body"]
    return ".".join(parts)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal error; see the service log"})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; its lifespan loads the store's current version.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to the ``HASHREC_*`` environment.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = make_state(settings)
        app.state.service = state
        await anyio.to_thread.run_sync(state.try_load)
        try:
            yield
        finally:
            await state.cache.close()

    app = FastAPI(
        title="hashrec",
        version="0.1.0",
        lifespan=lifespan,
        summary="Top-K recommendations: Hamming candidates, exact rerank.",
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(health.router)
    app.include_router(recommend.router)
    return app
