"""Hot routes answered without FastAPI's routing layers.

FastAPI runs each request through about ten layers (exception middleware, the router, the included
router, the route, the request handler, the endpoint runner) before the endpoint; for a cached answer
or a small catalogue they cost more than the search (benchmarks/serving.md). ``POST /v1/recommend``
is an endpoint that takes the ``Request`` and returns a ``Response``, so this middleware calls that
same function directly and renders its ``HTTPException`` and ``RequestValidationError`` with the
app's own handlers. Answers, error bodies, metrics and request ids are the same as through FastAPI
(``tests/service/test_direct.py``); the route stays declared for the OpenAPI document, and every
other method and path falls through to FastAPI. ``HASHREC_DIRECT_ROUTES=false`` turns it off.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class DirectRoutes:
    """ASGI middleware: POSTs to ``routes`` go straight to their endpoint.

    Parameters
    ----------
    app : ASGI app
        The rest of the stack (FastAPI's router), for everything else.
    routes : mapping of path to endpoint
        Endpoints taking the request and returning a response.
    handlers : mapping of exception type to handler
        The app's exception handlers (``FastAPI.exception_handlers``); exceptions without one
        propagate, as they do from a routed endpoint, to the server-error middleware.
    """

    def __init__(self, app: Any, routes: Mapping[str, Endpoint], handlers: Mapping[Any, Handler]) -> None:
        self.app = app
        self.routes = dict(routes)
        self.handlers = handlers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        endpoint = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            rendered = handler(request, exc)
            response = await rendered if inspect.isawaitable(rendered) else rendered
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The handler Starlette's exception middleware would pick: by status code for an
        ``HTTPException``, else for the nearest class of ``exc``."""
        if isinstance(exc, HTTPException) and exc.status_code in self.handlers:
            return self.handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in self.handlers:  # Exception's is the 500 page's
                return self.handlers[cls]
        return None
