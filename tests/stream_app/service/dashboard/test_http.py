"""The dashboard over real HTTP: the token, the page and its assets, store failures, the stream."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession, web

from stream_app.core.windows import Counts
from stream_app.devenv.embedded import free_port
from stream_app.service.dashboard import DashboardApi, install_dashboard
from stream_app.service.dashboard.routes import ASSETS
from stream_app.service.dashboard.source import EntityState
from stream_app.service.http import make_runner
from tests.stream_app.service.dashboard.conftest import AUTH, TOKEN, Desk, DeskFactory
from tests.support.dashboard_server import bearer_check
from tests.support.dashboard_source import MemoryDashboardSource
from tests.support.desk_data import CLOCK_MS, DETECTOR, WINDOW, burst_alert

API_PATHS = [
    "/api/overview",
    "/api/entities/market/series",
    "/api/entities/market/headlines",
    "/api/alerts/recent",
    "/api/stream",
]


def _source_with_market() -> MemoryDashboardSource:
    source = MemoryDashboardSource()
    source.put_state(EntityState("market", CLOCK_MS, Counts(2, 10, 3), Counts(20, 100, 30), "idle"))
    return source


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"bearer{TOKEN}"],
)
async def test_every_api_route_needs_the_token(desk_factory: DeskFactory, header: Any) -> None:
    desk = await desk_factory(_source_with_market())
    for path in API_PATHS:
        headers = {} if header is None else {"Authorization": header}
        resp = await desk.client.get(path, headers=headers)
        assert resp.status == 401, (path, header)
        assert await resp.json() == {"error": "missing or wrong bearer token"}
    assert desk.source.reads == 0  # refused before reading anything


async def test_token_in_any_case_of_the_scheme_and_no_token_configured(
    desk_factory: DeskFactory,
) -> None:
    desk = await desk_factory(_source_with_market())
    resp = await desk.client.get("/api/overview", headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status == 200
    open_desk = await desk_factory(_source_with_market(), token=None)
    assert (await open_desk.get("/api/overview", auth=False))[0] == 200


async def test_page_and_assets_need_no_token_and_carry_security_headers(desk: Desk) -> None:
    page = await desk.client.get("/")
    html = await page.text()
    assert page.status == 200
    assert page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "unsafe" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    # every asset the page references is served, with its type, and nothing outside the list
    referenced = set(re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', html))
    assert referenced == set(ASSETS) - {"/"}
    for path in referenced:
        resp = await desk.client.get(path)
        assert resp.status == 200, path
        assert resp.headers["Content-Type"] == ASSETS[path][1]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for path in ("/dashboard/", "/dashboard/../source.py", "/dashboard/vendor/uplot/LICENSE"):
        assert (await desk.client.get(path)).status == 404, path
    assert (await desk.client.post("/api/overview", headers=AUTH)).status == 405
    assert (await desk.client.post("/")).status == 405


def test_the_vendored_chart_library_keeps_its_licence_and_version() -> None:
    vendor = files("stream_app.service.dashboard").joinpath("static", "vendor", "uplot")
    assert "MIT License" in vendor.joinpath("LICENSE").read_text()
    head = vendor.joinpath("uPlot.iife.min.js").read_text()[:80]
    assert "uPlot (v1.6.32)" in head


async def test_a_failing_store_is_503_without_detail(desk: Desk) -> None:
    desk.source.put_state(EntityState("market", CLOCK_MS, Counts(), Counts(), "idle"))
    desk.source.fail = ConnectionError("redis://:hunter2@10.0.0.7:6379 refused")
    for path in API_PATHS[:-1]:
        resp = await desk.client.get(path, headers=AUTH)
        text = await resp.text()
        assert resp.status == 503, path
        assert json.loads(text) == {"error": "store unavailable"}
        assert "hunter2" not in text
        assert "10.0.0.7" not in text


async def _events(resp: ClientResponse, wanted: int) -> list[tuple[str, Any]]:
    """Read server-sent events (name, parsed data) until ``wanted`` arrived (10 s at most)."""
    out: list[tuple[str, Any]] = []
    buffer = b""
    async with asyncio.timeout(10):
        while len(out) < wanted:
            buffer += await resp.content.readany()
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                lines = frame.decode().split("\n")
                if lines[0].startswith(":"):
                    out.append(("heartbeat", None))
                    continue
                name = lines[0].removeprefix("event: ")
                out.append((name, json.loads(lines[1].removeprefix("data: "))))
    return out


async def _until(condition: Callable[[], bool]) -> None:
    """Poll a condition another task changes (no event to await from here), 10 s at most."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_stream_sends_the_overview_then_each_change(desk_factory: DeskFactory) -> None:
    source = _source_with_market()
    desk = await desk_factory(source)
    resp = await desk.client.get("/api/stream", headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"

    [(name, first)] = await _events(resp, 1)
    assert name == "overview"
    assert first["firing"] == []

    s = EntityState("ticker:ACME", CLOCK_MS, Counts(9, 3, 0), Counts(20, 150, 40), "idle")
    source.put_state(s)
    source.publish_alert(burst_alert(s.entity, "ACME", s.window, s.baseline, CLOCK_MS))
    [(name, second)] = await _events(resp, 1)
    assert name == "overview"
    assert [a["entity"] for a in second["firing"]] == ["ticker:ACME"]
    assert second["entities"][0]["entity"] == "ticker:ACME"

    source.fail = ConnectionError("down")
    [(name, down)] = await _events(resp, 1)
    assert (name, down) == ("unavailable", {"error": "store unavailable"})
    source.fail = None
    [(name, back)] = await _events(resp, 1)
    assert name == "overview"
    assert back == second
    resp.close()


async def test_stream_count_is_capped_and_freed(desk_factory: DeskFactory) -> None:
    desk = await desk_factory(_source_with_market(), max_streams=2)
    first = await desk.client.get("/api/stream", headers=AUTH)
    second = await desk.client.get("/api/stream", headers=AUTH)
    await _events(first, 1)
    await _events(second, 1)
    third = await desk.client.get("/api/stream", headers=AUTH)
    assert third.status == 503
    assert await third.json() == {"error": "too many dashboard streams; retry later"}
    first.close()
    # the server notices the closed connection within a liveness check (1 s), not a heartbeat
    await _until(lambda: desk.feed.open_streams == 1)
    again = await desk.client.get("/api/stream", headers=AUTH)
    assert again.status == 200
    again.close()
    second.close()


async def test_shutdown_ends_open_streams_at_once(desk_factory: DeskFactory) -> None:
    desk = await desk_factory(_source_with_market())
    resp = await desk.client.get("/api/stream", headers=AUTH)
    await _events(resp, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await desk.client.close()  # server shutdown: on_shutdown closes the feed
    assert loop.time() - started < 3.0
    assert desk.feed.open_streams == 0


async def test_a_stream_outlives_the_workers_idle_timeout() -> None:
    """The worker's runner closes idle connections (``service.http.make_runner``); an open
    stream is a request in progress, so it is not idle and keeps delivering."""
    source = _source_with_market()
    app = web.Application()
    api = DashboardApi(source, WINDOW, DETECTOR)
    install_dashboard(app, api, authorized=bearer_check(TOKEN), feed_interval=0.05)
    runner = make_runner(app, idle_timeout=0.3)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with (
            ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/stream", headers=AUTH) as resp,
        ):
            await _events(resp, 1)
            await asyncio.sleep(1.0)  # the point: time passes beyond the idle timeout
            s = EntityState("ticker:LATE", CLOCK_MS, Counts(9, 3, 0), Counts(20, 150, 40), "idle")
            source.put_state(s)
            source.publish_alert(burst_alert(s.entity, "LATE", s.window, s.baseline, CLOCK_MS))
            [(name, body)] = await _events(resp, 1)
            assert name == "overview"
            assert [a["entity"] for a in body["firing"]] == ["ticker:LATE"]
    finally:
        await runner.cleanup()
