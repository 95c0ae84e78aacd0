"""A thin ASGI middleware: request ids, per-route metrics, a JSON log line per error."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson
from hashrec.service import metrics
from hashrec.service.logs import REQUEST_ID

log = logging.getLogger("hashrec.access")

Scope = dict[str, Any]


class RequestMiddleware:
    """Label each request with an id (``X-Request-ID`` in or generated) and record its metrics.

    Routes are labelled by their template from a fixed set, so metric cardinality stays bounded.
    """

    def __init__(self, app: Any, routes: set[str], max_body_bytes: int = 1 << 20) -> None:
        self.app = app
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self._bound: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id")
        # Headers are bytes read as latin-1: only printable ASCII comes back as the client sent it.
        if not (request_id and request_id.isascii() and request_id.isprintable() and request_id.strip()):
            request_id = os.urandom(16).hex()  # uuid4().hex cost 4x more
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
            receive = await self._limit_body(scope, receive)
            if receive is None:
                await _send_json(send_with_id, 413, f"body: larger than {self.max_body_bytes} bytes")
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            route = scope["path"] if scope["path"] in self.routes else "other"
            elapsed = time.perf_counter() - started
            counter, histogram = self._children(route, scope["method"], status)
            metrics.TALLY.inc(counter)
            metrics.TALLY.observe(histogram, elapsed)
            if status >= 500:
                log.error("%s %s -> %d in %.1f ms", scope["method"], scope["path"], status, elapsed * 1e3)
            REQUEST_ID.reset(token)

    def _children(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram children of these labels, bound once."""
        key = (route, method, status)
        children = self._bound.get(key)
        if children is None:
            children = (
                metrics.REQUESTS.labels(route=route, method=method, status=str(status)),
                metrics.LATENCY.labels(route=route, method=method),
            )
            if len(self._bound) < 4096:  # methods come from clients: keep the memo bounded
                self._bound[key] = children
        return children

    async def _limit_body(self, scope: Scope, receive: Any) -> Any:
        """The receive callable to use, or None when the body is over the limit.

        A declared Content-Length is checked up front; a body without one is read (up to the
        limit) and replayed to the app.
        """
        length = _header(scope, b"content-length")
        if length is not None:
            return receive if length.isdigit() and int(length) <= self.max_body_bytes else None
        if scope["method"] in ("GET", "HEAD"):
            return receive
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                return None
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return dict(await receive())
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay


async def _send_json(send: Any, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None
