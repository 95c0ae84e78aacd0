"""Hot routes answered without FastAPI's routing layers.

FastAPI runs each request through about ten layers (exception middleware, the router, the included
router, the route, the request handler, the endpoint runner) before the endpoint; for a cached answer
or a small catalogue they cost more than the search (benchmarks/serving.md). ``POST /v1/recommend``
is an endpoint that takes the ``Request`` and returns a ``Response``, so this middleware calls that
same function directly and renders its ``HTTPException`` and ``RequestValidationError`` with the
app's own handlers. Answers, error bodies, metrics and request ids are the same as through FastAPI
(``tests/service/test_direct.py``); the route stays declared for the OpenAPI document, and every
other method and path falls through to FastAPI. ``HASHREC_DIRECT_ROUTES=false`` turns it off.

A route may also have an *answerer*: given the service state and the body bytes it returns the
whole answer when it can give it without the route (``recommend.cached_answer``: a plain request
held by the in-process cache), else None, and the body is replayed to the endpoint.
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
Answerer = Callable[[Any, bytes], bytes | None]


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
    answerers : mapping of path to answerer
        Called with ``app.state.service`` and the body of a JSON request first; None goes on to
        the endpoint.
    """

    def __init__(
        self,
        app: Any,
        routes: Mapping[str, Endpoint],
        handlers: Mapping[Any, Handler],
        answerers: Mapping[str, Answerer] | None = None,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.handlers = handlers
        self.answerers = dict(answerers or {})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        endpoint = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        answerer = self.answerers.get(scope["path"])
        if answerer is not None and _is_json(scope):
            body, receive = await _read_body(receive)
            answer = answerer(scope["app"].state.service, body) if body is not None else None
            if answer is not None:
                headers = [(b"content-length", str(len(answer)).encode()), _JSON]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
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


_JSON = (b"content-type", b"application/json")


def _is_json(scope: dict[str, Any]) -> bool:
    """Whether the request says its body is plain ``application/json`` (as the route requires)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.partition(b";")[0].strip().lower() == b"application/json"  # type: ignore[no-any-return]
    return False


async def _read_body(receive: Any) -> tuple[bytes | None, Any]:
    """(the whole body, or None if the stream ended otherwise; a receive that replays it all)."""
    messages: list[dict[str, Any]] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    complete = messages[-1]["type"] == "http.request"
    body = b"".join(m.get("body", b"") for m in messages) if complete else None
    pending = iter(messages)

    async def replay() -> dict[str, Any]:
        return next(pending, None) or await receive()

    return body, replay
