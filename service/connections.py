"""Connection timeouts uvicorn does not have: a client must send a whole request in time.

uvicorn (0.55) closes an idle keep-alive connection only after a first response, and has no
header or body read timeout: a socket that never sends, or sends a byte at a time, holds a file
descriptor forever, and enough of them starve every client (benchmarks/reliability.md). This
protocol arms a timer when a connection opens and after each response, cancelled once the next
request is wholly received; when it fires, the connection is closed. ``hashrec serve`` runs it
as uvicorn's ``http`` protocol; without httptools (uvicorn's own default then) it is not used.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


@functools.cache
def read_timeout_s() -> float:
    """HASHREC_REQUEST_READ_TIMEOUT_S, read once per process (the workers' environment)."""
    from hashrec.service.settings import Settings

    return Settings().request_read_timeout_s


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a whole-request read timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(read_timeout_s(), self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection that sent no whole request in %.1fs", read_timeout_s())
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer()

    def on_message_complete(self) -> None:
        self._cancel_read_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)
