"""A thin ASGI middleware: request ids, per-route metrics, a JSON log line per error."""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from typing import Any

from service import metrics

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("hashrec.access")

Scope = dict[str, Any]


class RequestMiddleware:
    """Label each request with an id (``X-Request-ID`` in or generated) and record its metrics.

    Routes are labelled by their template from a fixed set, so metric cardinality stays bounded.
    """

    def __init__(self, app: Any, routes: set[str]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        token = REQUEST_ID.set(request_id[:64])
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", REQUEST_ID.get().encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            elapsed = time.perf_counter() - started
            metrics.REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            metrics.LATENCY.labels(route=route, method=scope["method"]).observe(elapsed)
            if status >= 500:
                log.error("%s %s -> %d in %.1f ms", scope["method"], scope["path"], status, elapsed * 1e3)
            REQUEST_ID.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
