"""The worker's HTTP server: Faust's aiohttp driver, finpulse's routes only, with limits.

``FinpulseWeb`` replaces Faust's web driver (``FinpulseApp._new_web``) for three reasons
(issue 9):

* **No Faust views.** Faust serves ``/`` (``{"status": "OK"}``), ``/router/`` (partition
  assignments), ``/table/`` and, in debug, ``/graph`` and ``/stats`` on the same port,
  without the API token. None of its blueprints is mounted here: the port answers
  finpulse's routes only, and ``GET /`` is free for the desk dashboard.
* **Idle and header timeout.** A connection that has not sent a whole request within
  ``web_idle_timeout`` of opening, or of its last reply, is closed (aiohttp's keep-alive
  timer, which also runs from the connection's start; Faust left it at an hour). A client
  that trickles header bytes is closed all the same.
* **A connection bound.** At most ``web_max_connections`` connections are served; one more
  is answered ``503`` and closed at once, so half-open connections cannot use up the
  worker's file descriptors (which Kafka and Redis sockets need too). Refusals are logged
  at most once per ``_LOG_EVERY`` seconds, with their count.

``GuardedListener`` is the part without Faust (tested on its own); ``FinpulseWeb`` starts it
in place of aiohttp's ``TCPSite``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp.web import AppRunner
from aiohttp.web_server import Server
from faust.web.drivers.aiohttp import Web

__all__ = ["REFUSED", "FinpulseWeb", "GuardedListener", "make_runner"]

log = logging.getLogger(__name__)

_LOG_EVERY = 10.0
# Sent to a connection over the bound (it may not even send a request: no waiting for one).
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: 51\r\n\r\n"
    b'{"error":"too many connections, retry in a moment"}'
)
_HEADER_LIMIT = 8190  # bytes of a request line or header field (aiohttp's default)


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(REFUSED)
        transport.close()


class _Counted(asyncio.Protocol):
    """Delegates to aiohttp's request handler; counts the connection while it is open."""

    def __init__(self, inner: Any, listener: GuardedListener) -> None:
        self._inner = inner
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.open -= 1
        self._inner.connection_lost(exc)


class GuardedListener:
    """A TCP listener for an aiohttp ``Server`` that serves at most ``max_connections``."""

    def __init__(self, server: Server, max_connections: int) -> None:
        self.server = server
        self.max_connections = max_connections
        self.open = 0
        self.refused = 0
        self._unlogged = 0
        self._logged_at = 0.0
        self._listener: asyncio.Server | None = None

    def _protocol(self) -> asyncio.Protocol:
        if self.open >= self.max_connections:
            self.refused += 1
            self._unlogged += 1
            now = time.monotonic()
            if now - self._logged_at >= _LOG_EVERY:
                log.warning(
                    "refused %d HTTP connection(s): %d open, the limit "
                    "(FINPULSE_WEB_MAX_CONNECTIONS)", self._unlogged, self.open,
                )  # fmt: skip
                self._unlogged, self._logged_at = 0, now
            return _Refuse()
        self.open += 1
        return _Counted(self.server(), self)

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, host, port, backlog=128)

    @property
    def port(self) -> int:
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None


def make_runner(app: Any, idle_timeout: float) -> AppRunner:
    """An ``AppRunner`` whose connections close after ``idle_timeout`` without a request."""
    return AppRunner(
        app,
        access_log=None,
        keepalive_timeout=idle_timeout,
        max_line_size=_HEADER_LIMIT,
        max_field_size=_HEADER_LIMIT,
    )


class FinpulseWeb(Web):
    """Faust's aiohttp driver without Faust's views, behind a ``GuardedListener``."""

    def __init__(self, app: Any, *, idle_timeout: float, max_connections: int, **kw: Any):
        super().__init__(app, **kw)
        self._runner = make_runner(self.web_app, idle_timeout)
        self._max_connections = max_connections
        self._guard: GuardedListener | None = None

    def _enabled_blueprints(self) -> list[tuple[str, Any]]:
        return []  # no /, /router, /table, /graph, /stats: see the module docstring

    async def start_server(self) -> None:
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._guard = GuardedListener(server, self._max_connections)
        await self._guard.start(self.app.conf.web_bind, self.app.conf.web_port)

    async def stop_server(self) -> None:
        if self._guard is not None:
            await self._guard.stop()
        await super().stop_server()
