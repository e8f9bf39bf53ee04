"""A real HTTP receiver for sink tests: an aiohttp server on a free loopback port.

It records every request (path, headers, raw body, the status it answered) and can
misbehave for a while: ``fail(n, status)`` answers the next ``n`` requests with ``status``
(a ``Retry-After`` optional), ``hang(n, seconds)`` holds the next ``n`` requests without an
answer (the client times out), and then it recovers on its own. Tests await
``wait_for(...)`` (an event per request), never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["HttpReceiver", "Received"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None  # None: the request was held until the client gave up

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Trouble:
    remaining: int
    status: int | None = None
    hang_seconds: float = 0.0
    retry_after: str | None = None
    paths: tuple[str, ...] | None = None


@dataclass
class HttpReceiver:
    requests: list[Received] = field(default_factory=list)
    _trouble: list[_Trouble] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def fail(self, n: int, status: int = 500, *, retry_after: str | None = None,
             paths: tuple[str, ...] | None = None) -> None:  # fmt: skip
        self._trouble.append(_Trouble(n, status=status, retry_after=retry_after, paths=paths))

    def hang(self, n: int, seconds: float, *, paths: tuple[str, ...] | None = None) -> None:
        self._trouble.append(_Trouble(n, hang_seconds=seconds, paths=paths))

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, pred: Callable[[list[Received]], bool], within: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._changed.clear()
            if pred(self.requests):
                return
            remaining = deadline - loop.time()
            assert remaining > 0, f"receiver never saw the awaited requests: {self.requests}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def _take_trouble(self, path: str) -> _Trouble | None:
        for t in self._trouble:
            if t.remaining > 0 and (t.paths is None or path in t.paths):
                t.remaining -= 1
                return t
        return None

    def _record(self, request: web.Request, body: bytes, status: int | None) -> None:
        self.requests.append(Received(request.path, dict(request.headers), body, status))
        self._changed.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        trouble = self._take_trouble(request.path)
        if trouble is not None and trouble.status is None:
            self._record(request, body, None)
            await asyncio.sleep(trouble.hang_seconds)  # the client times out first
            return web.Response(status=504)
        status = trouble.status if trouble is not None and trouble.status else 200
        self._record(request, body, status)
        headers = {"Retry-After": trouble.retry_after} if trouble and trouble.retry_after else {}
        return web.Response(status=status, text="ok" if status == 200 else "nope",
                            headers=headers)  # fmt: skip
