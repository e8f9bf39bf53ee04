"""A real aiohttp server with the dashboard installed, in a thread, on a free loopback port.

For browser and HTTP tests that need the page without a worker: the routes, the static
assets and the live feed are the product's own (``install_dashboard``), fed by a
``MemoryDashboardSource`` the test changes while the page is open.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from stream_app.config import DetectorSettings, WindowSettings
from stream_app.devenv.embedded import free_port
from stream_app.service.dashboard import DashboardApi, LiveFeed, install_dashboard
from stream_app.service.health import HealthState
from stream_app.service.metrics import Metrics
from stream_app.service.web import WebApi
from tests.support.dashboard_source import MemoryDashboardSource

__all__ = ["DashboardServer", "bearer_check"]


def bearer_check(token: str | None) -> Any:
    """The API's own bearer check (``WebApi.authorized``) for ``token``."""
    api = WebApi(
        store=lambda: None,  # type: ignore[arg-type,return-value]
        metrics=Metrics(),
        health=HealthState(app_id="dashboard-test", model_version="test"),
        api_token=token,
    )
    return api.authorized


@dataclass
class DashboardServer:
    source: MemoryDashboardSource
    token: str | None
    window: WindowSettings
    detector: DetectorSettings
    feed_interval: float = 0.2
    max_streams: int = 32
    port: int = field(default_factory=free_port)
    feed: LiveFeed | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        app = web.Application()
        api = DashboardApi(self.source, self.window, self.detector)
        self.feed = install_dashboard(
            app,
            api,
            authorized=bearer_check(self.token),
            feed_interval=self.feed_interval,
            max_streams=self.max_streams,
        )
        self._runner = web.AppRunner(app, shutdown_timeout=5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> DashboardServer:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="dashboard", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(10)
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()
        self._loop = None
