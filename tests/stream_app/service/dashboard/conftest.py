"""Fixtures: the dashboard routes on a real aiohttp server (loopback port), fed by a
``MemoryDashboardSource`` each test fills."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_app.service.dashboard import DashboardApi, LiveFeed, install_dashboard
from tests.support.dashboard_server import bearer_check
from tests.support.dashboard_source import MemoryDashboardSource
from tests.support.desk_data import DETECTOR, WINDOW

TOKEN = "desk-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Desk:
    """A started server: ``client`` talks HTTP to it, ``source`` is what it reads."""

    def __init__(self, client: TestClient[Any, Any], source: MemoryDashboardSource, feed: LiveFeed):
        self.client = client
        self.source = source
        self.feed = feed

    async def get(self, path: str, *, auth: bool = True) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=AUTH if auth else {})
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body


DeskFactory = Callable[..., Awaitable[Desk]]


@pytest.fixture
async def desk_factory() -> AsyncIterator[DeskFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def make(
        source: MemoryDashboardSource | None = None,
        *,
        token: str | None = TOKEN,
        feed_interval: float = 0.05,
        max_streams: int = 4,
    ) -> Desk:
        source = source or MemoryDashboardSource()
        app = web.Application()
        feed = install_dashboard(
            app,
            DashboardApi(source, WINDOW, DETECTOR),
            authorized=bearer_check(token),
            feed_interval=feed_interval,
            max_streams=max_streams,
        )
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return Desk(client, source, feed)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def desk(desk_factory: DeskFactory) -> Desk:
    return await desk_factory()
