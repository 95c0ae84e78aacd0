"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from hashrec.service import metrics
from hashrec.service.direct import DirectRoutes
from hashrec.service.middleware import RequestMiddleware
from hashrec.service.routes import admin, health, model_info, prometheus, recommend
from hashrec.service.settings import Settings
from hashrec.service.state import ReloadRefused, ServiceState, make_state
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


def _field_name(loc: tuple[object, ...]) -> str:
    """('body', 'k') -> 'k'; the body itself stays 'body'."""
    parts = [str(p) for p in loc if p != "body"] or ["body"]
    return ".".join(parts)


#: Validation errors listed in a 422; a 30 KB list of bad items must not answer with 1 MB.
MAX_LISTED_ERRORS = 20


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    found = exc.errors()
    errors = [
        {
            "field": "body" if e["type"] == "json_invalid" else _field_name(tuple(e["loc"])),
            "message": e["msg"],
        }
        for e in found[:MAX_LISTED_ERRORS]
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    if len(found) > MAX_LISTED_ERRORS:
        detail += f"; and {len(found) - MAX_LISTED_ERRORS} more errors"
    return JSONResponse(status_code=422, content={"detail": detail, "errors": errors})


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    content: dict[str, object] = {"detail": str(exc.detail)}
    if exc.status_code == 422:  # our own 422s read "field: message", like validation errors
        field, _, message = str(exc.detail).partition(": ")
        content["errors"] = [{"field": field, "message": message}]
    return JSONResponse(status_code=exc.status_code, content=content, headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    # close the connection: uvicorn drops it after an unhandled error, and a client's next request
    # on it would fail too
    return JSONResponse(
        status_code=500,
        content={"detail": "internal error; see the service log"},
        headers={"connection": "close"},
    )


def install_drain_on_sigterm(state: ServiceState, drain_s: float) -> None:
    """On SIGTERM, report not ready at once and keep serving for ``drain_s`` before stopping.

    A load balancer polling /readyz stops sending new requests during the drain, so none is
    sent to a connection the server is about to close. Only possible in the main thread
    (uvicorn runs the lifespan there); elsewhere nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    stop_server = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if state.draining:
            return
        state.draining = True
        log.info("SIGTERM: draining for %.1fs before shutdown", drain_s)
        if callable(stop_server):
            loop.call_soon_threadsafe(loop.call_later, drain_s, stop_server, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; its lifespan loads the store's current version and follows the store.

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
        with contextlib.suppress(ReloadRefused):  # not ready, with the reason; the poller retries
            await state.reload()
        if settings.shutdown_drain_s > 0:
            install_drain_on_sigterm(state, settings.shutdown_drain_s)
        follower = None
        tally = asyncio.create_task(metrics.TALLY.flush_every(1.0))
        if settings.poll_interval_s > 0:  # a pinned version name resolves to itself: nothing moves
            follower = asyncio.create_task(state.follow_store())
        try:
            yield
        finally:
            for task in (follower, tally):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await state.cache.close()

    app = FastAPI(
        title="hashrec",
        version="0.1.0",
        lifespan=lifespan,
        summary="Top-K recommendations: Hamming candidates from binary codes, exact rerank.",
        # FastAPI otherwise asks the OpenTelemetry API for configured providers on every request.
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
        # /v1/recommend/ is a 404 naming no such route, not a 307 with an empty body and an http://
        # Location that is wrong behind a TLS proxy.
        redirect_slashes=False,
        openapi_url=None if settings.docs == "off" else "/openapi.json",
        docs_url="/docs" if settings.docs == "ui" else None,
        redoc_url="/redoc" if settings.docs == "ui" else None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    routers = (health.router, recommend.router, model_info.router, prometheus.router, admin.router)
    for router in routers:
        # the admin routes answer 404 without a token, and are documented only where they work
        app.include_router(
            router, include_in_schema=router is not admin.router or settings.admin_token is not None
        )
    if settings.direct_routes:  # innermost of the middleware below, so CORS and metrics still apply
        handlers = app.exception_handlers
        app.add_middleware(
            DirectRoutes,
            routes={"/v1/recommend": recommend.recommend},
            handlers=handlers,
            answerers={"/v1/recommend": recommend.cached_answer},
        )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    routes = {getattr(route, "path", "") for router in routers for route in router.routes}
    app.add_middleware(RequestMiddleware, routes=routes, max_body_bytes=settings.max_body_bytes)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and several workers: settings from the environment."""
    from hashrec.service.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)
